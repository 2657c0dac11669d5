"""`appliance run`: the container's entrypoint (under tini as PID 1).

Brings the data volume to this image's format first (appliance/migrations: a newer
volume is refused, an older one migrated step by step), then loads and validates
appliance.toml (writing the commented default on first boot),
creates first-boot secrets, renders every service's configuration and execs
supervisord, which then runs Postfix, Dovecot and the SMTP daemons. No service starts on
a bad configuration: a bad toml is logged with the file, line, key and reason, and the
boot runs the last good configuration instead, or, with none, supervisord without
programs until `appliance apply` starts them (appliance/recovery.py).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance import migrations, paths, recovery
from appliance.apply import Plan, apply
from appliance.config import Config, write_atomic
from appliance.config.default import default_toml
from appliance.services.base import run_command, said, supervisorctl
from appliance.services.registry import SERVICES
from appliance.services.supervisord import CONF as SUPERVISORD_CONF
from appliance.services.supervisord import waiting_conf
from appliance.tls import ensure_self_signed

log = logging.getLogger("appliance.run")

STARTING_TIMEOUT_S = 120


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
    """Every service's folders on the volume and in /run (also after a restore, while
    supervisord runs)."""
    paths.DATA.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.DATA, 0o755)
    for service in SERVICES:
        service.prepare()


def clean_stale_runtime() -> None:
    """At boot only: no runtime file a killed container left behind."""
    paths.TLS_IN_USE.unlink(missing_ok=True)  # nothing loaded it: apply installs it anew
    for service in SERVICES:
        for stale in service.stale_runtime():
            stale.unlink(missing_ok=True)


def setup(config: Config) -> None:
    """What rendering needs first: the self-signed certificate of a first boot, and each
    service's own (the DKIM key, webmail's database)."""
    if ensure_self_signed(paths.TLS_CERT, paths.TLS_KEY, config.fqdn,
                          config.data["system"]["domain"]):
        log.info("first boot: made a self-signed certificate for %s", config.fqdn)
    for service in SERVICES:
        service.setup(config)


def starting(config: Config) -> None:
    """What each service needs done just before supervisord starts it (the resolver in
    resolv.conf, the interface's MTU, Postfix's queue folders)."""
    for service in SERVICES:
        service.starting(config)


def start_on(config: Config) -> Plan:
    """Render CONFIG for services about to start. Raises ConfigError, changing nothing."""
    setup(config)
    plan = apply(config, reload=False)
    starting(config)
    return plan


def start_waiting_services(config: Config) -> list[str]:
    """After a boot that waited for a good appliance.toml (supervisord runs without
    programs) and an apply that rendered CONFIG: start every service, as a boot would."""
    starting(config)
    run = functools.partial(run_command, timeout=STARTING_TIMEOUT_S)  # every program starts
    started = supervisorctl(run, "reread") and supervisorctl(run, "update")
    return [said("supervisord: every service started (the boot had waited for a good "
                 "config)", started)]


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="appliance: %(message)s")
    # Before anything touches the volume: a newer volume is refused as it is, an older
    # one migrated (or left as it was, and the boot stops)
    try:
        migrations.at_boot(volume_used=_volume_in_use() is not None or paths.CONFIG.exists())
    except migrations.MigrationError as e:
        log.error("%s", e)
        return 1
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
    supervisord = shutil.which("supervisord") or str(Path(sys.executable).with_name("supervisord"))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(supervisord, [supervisord, "-c", SUPERVISORD_CONF])
    return 0  # not reached
