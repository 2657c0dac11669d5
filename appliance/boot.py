"""`appliance run`: the container's entrypoint (under tini as PID 1).

Loads and validates appliance.toml (writing the commented default on first boot),
creates first-boot secrets, renders every service's configuration and execs
supervisord, which then runs Postfix, Dovecot and the SMTP daemons. No service starts on
a bad configuration: a bad toml is logged with the file, line, key and reason, and the
boot runs the last good configuration instead, or, with none, supervisord without
programs until `appliance apply` starts them (appliance/recovery.py).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance import paths, recovery
from appliance.apply import RELOAD_FAILED, Plan, apply
from appliance.config import Config, write_atomic
from appliance.config.default import default_toml
from appliance.dkim_keys import ensure_default_key
from appliance.services.supervisord import CONF as SUPERVISORD_CONF
from appliance.services.supervisord import waiting_conf
from appliance.services.unbound import LISTEN as UNBOUND_LISTEN
from appliance.services.unbound import ROOT_KEY_SEED
from appliance.tls import ensure_self_signed

log = logging.getLogger("appliance.run")


# Runtime files a killed container leaves behind; stale pid files make daemons think
# they are already running once PIDs get reused after a restart.
STALE_RUNTIME = (
    paths.TLS_IN_USE,  # nothing has loaded a certificate yet: apply installs it anew
    Path("/run/dovecot/master.pid"),
    paths.SUPERVISOR_SOCKET,
    paths.SUPERVISOR_SOCKET.parent / "supervisord.pid",
    paths.SPAMD_SOCKET,
    paths.SPAMD_SOCKET.parent / "spamd.pid",
    paths.CLAMD_SOCKET,
    paths.UNBOUND_CONTROL,
)


def first_boot_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """[network] settings a compose file may seed on first boot: APPLIANCE_DNS_FORWARDERS
    and APPLIANCE_DNS_PRIVATE_ZONES (separated by spaces or commas), APPLIANCE_DNSSEC
    (yes/no)."""
    out: dict[str, Any] = {}
    if forwarders := env.get("APPLIANCE_DNS_FORWARDERS", "").replace(",", " ").split():
        out["network.dns_forwarders"] = forwarders
    if zones := env.get("APPLIANCE_DNS_PRIVATE_ZONES", "").replace(",", " ").split():
        out["network.dns_private_zones"] = zones
    if (dnssec := env.get("APPLIANCE_DNSSEC", "").strip().lower()):
        out["network.dnssec"] = dnssec not in ("no", "false", "0", "off")
    return out


def _volume_in_use() -> str | None:
    """What shows a volume was used before (a last good configuration, mailboxes, DKIM
    keys), or None for a new one."""
    if recovery.last_good_path().exists():
        return str(recovery.last_good_path())
    for folder in (paths.MAIL_DIR, paths.DKIM_KEYS):
        if folder.is_dir() and any(folder.iterdir()):  # prepare_volume() makes them empty
            return str(folder)
    return None


def first_boot_config() -> bool:
    """Write the default appliance.toml on a new volume; returns whether it did. A used
    volume without one is a broken one, not a first boot: a default written there would
    be applied and kept as last good, and every user would be gone. The boot then runs
    the last good copy, or waits with the admin tools (recovery.boot reports the file
    as not found)."""
    if paths.CONFIG.exists():
        return False
    if used := _volume_in_use():
        log.error("%s is missing but this volume was used before (%s exists): not "
                  "writing a default over it", paths.CONFIG, used)
        return False
    text = default_toml(
        hostname=os.environ.get("APPLIANCE_HOSTNAME") or None,
        domain=os.environ.get("APPLIANCE_DOMAIN") or None,
        overrides=first_boot_overrides(os.environ),
    )
    write_atomic(paths.CONFIG, text, mode=0o600)
    log.info("first boot: wrote the default %s", paths.CONFIG)
    return True


def prepare_volume() -> None:
    paths.DATA.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.DATA, 0o755)
    vmail = pwd.getpwnam("vmail")
    paths.MAIL_DIR.mkdir(exist_ok=True)
    os.chown(paths.MAIL_DIR, vmail.pw_uid, vmail.pw_gid)
    os.chmod(paths.MAIL_DIR, 0o700)
    paths.POSTFIX_QUEUE.mkdir(exist_ok=True)
    # The SMTP daemons' own state (karma, greylisting, DMARC records) and DKIM keys.
    qpsmtpd = pwd.getpwnam("qpsmtpd")
    for folder in (paths.SMTPD_STATE, paths.DKIM_KEYS):
        folder.mkdir(exist_ok=True)
        os.chown(folder, qpsmtpd.pw_uid, qpsmtpd.pw_gid)
        os.chmod(folder, 0o750)
    # spamd's home (the Bayes database) and ClamAV's signatures.
    spamd = pwd.getpwnam(paths.SPAMD_USER)
    for folder in (paths.SPAMASSASSIN_DIR, paths.SPAMASSASSIN_DIR / "bayes"):
        folder.mkdir(exist_ok=True)
        os.chown(folder, spamd.pw_uid, spamd.pw_gid)
        os.chmod(folder, 0o750)
    from appliance.services.clamav.signatures import prepare_dirs

    prepare_dirs()
    # Unbound's DNSSEC trust anchor, seeded from Debian's copy; Unbound updates it.
    unbound = pwd.getpwnam("unbound")
    paths.UNBOUND_DIR.mkdir(exist_ok=True)
    os.chown(paths.UNBOUND_DIR, unbound.pw_uid, unbound.pw_gid)
    if not paths.UNBOUND_ROOT_KEY.exists():
        shutil.copyfile(ROOT_KEY_SEED, paths.UNBOUND_ROOT_KEY)
    os.chown(paths.UNBOUND_ROOT_KEY, unbound.pw_uid, unbound.pw_gid)


def use_own_resolver() -> None:
    """Point the C library (Postfix, fetchmail, ...) at Unbound. Docker bind-mounts
    /etc/resolv.conf, so it is rewritten in place, not replaced."""
    with open("/etc/resolv.conf", "w") as f:
        f.write("# appliance: Unbound, configured by [network] in appliance.toml\n"
                f"nameserver {UNBOUND_LISTEN}\noptions edns0 trust-ad\n")


def set_interface_mtu(config: Config) -> None:
    """A new container has a new interface: set [network] mtu on it at every start."""
    from appliance.services.network.interfaces import NetworkError, apply_mtu, remember_given_mtu

    remember_given_mtu(config.data["network"]["interface"])
    try:
        if said := apply_mtu(config):
            log.info("%s", said)
    except NetworkError as e:
        log.error("%s", e)


def clean_stale_runtime() -> None:
    for p in STALE_RUNTIME:
        p.unlink(missing_ok=True)
    paths.SUPERVISOR_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    paths.SPAMD_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    unbound = pwd.getpwnam("unbound")  # its control socket
    paths.UNBOUND_CONTROL.parent.mkdir(parents=True, exist_ok=True)
    os.chown(paths.UNBOUND_CONTROL.parent, unbound.pw_uid, unbound.pw_gid)


def prepare(config: Config) -> None:
    """What rendering needs first: the self-signed certificate and the DKIM key of a
    first boot, webmail's database."""
    if ensure_self_signed(paths.TLS_CERT, paths.TLS_KEY, config.fqdn,
                          config.data["system"]["domain"]):
        log.info("first boot: made a self-signed certificate for %s", config.fqdn)
    if ensure_default_key(paths.DKIM_KEYS,
                          selector=config.data["smtpd"]["dkim_sign"]["selector"]):
        log.info("first boot: made the default DKIM key (see `appliance print-dns`)")
    from appliance.services.webmail import roundcube as webmail

    webmail.prepare()


def start_on(config: Config) -> Plan:
    """Render CONFIG for services about to start. Raises ConfigError, changing nothing."""
    prepare(config)
    plan = apply(config, reload=False)
    use_own_resolver()
    set_interface_mtu(config)
    return plan


def postfix_check() -> None:
    # `postfix check` creates the queue directories on a new volume and fixes their
    # ownership after an image upgrade changed the postfix uid.
    subprocess.run(["postfix", "check"], check=False)


def start_waiting_services(config: Config) -> list[str]:
    """After a boot that waited for a good appliance.toml (supervisord runs without
    programs) and an apply that rendered CONFIG: start every service, as a boot would."""
    use_own_resolver()
    set_interface_mtu(config)
    postfix_check()
    what = "supervisord: every service started (the boot had waited for a good config)"
    for args in (("reread",), ("update",)):
        try:
            proc = subprocess.run(["supervisorctl", *args], capture_output=True, text=True,
                                  check=False, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.error("supervisorctl %s failed: %s", args[0], e)
            return [what + RELOAD_FAILED]
        if proc.returncode != 0:
            log.error("supervisorctl %s failed (exit %d): %s", args[0], proc.returncode,
                      (proc.stdout + proc.stderr).strip())
            return [what + RELOAD_FAILED]
    return [what]


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="appliance: %(message)s")
    prepare_volume()
    first_boot_config()
    clean_stale_runtime()
    plan, state = recovery.boot(start_on)
    recovery.write_state(state)
    if state is not None:  # loudly: this is what `docker compose logs` shows first
        log.error("*" * 72)
        for line in recovery.boot_banner(state):
            log.error("%s", line)
        log.error("*" * 72)
    if plan is None:
        write_atomic(Path(SUPERVISORD_CONF), waiting_conf(), mode=0o644)
    else:
        log.info("rendered %s", ", ".join(plan.services) or "nothing new")
        postfix_check()
    supervisord = shutil.which("supervisord") or str(Path(sys.executable).with_name("supervisord"))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(supervisord, [supervisord, "-c", SUPERVISORD_CONF])
    return 0  # not reached
