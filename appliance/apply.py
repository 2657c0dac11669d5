"""`appliance apply`: render, check, swap atomically, reload only what changed.

1. render every service's files from the validated config (pure);
2. compare with what is on disk: unchanged services are left alone;
3. write the changed files into a staging tree and run each service's own checker
   (`postfix check`, `doveconf -n`, loading our plugins); a failure stops here and
   the running configuration stays untouched;
4. move each changed file into place (rename: readers see old or new, never half);
5. reload the services whose files changed (postfix reload, doveadm reload, SIGHUP
   to our SMTP daemons, supervisorctl update).
"""

from __future__ import annotations

import datetime as dt
import difflib
import fcntl
import grp
import json
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from appliance import paths
from appliance.config import Config, ConfigError, parse, write_atomic
from appliance.config.load import reserved_name_problem, reserved_name_warnings
from appliance.config.schema import ACCOUNT_COLLECTIONS
from appliance.services.clamav import CLAMD_CONF, FRESHCLAM_CONF
from appliance.services.dovecot import GLOBAL_SIEVES
from appliance.services.fetchmail import RC
from appliance.services.registry import RenderedFile, render_all
from appliance.services.supervisord import SMTP_DAEMONS
from appliance.services.unbound import CONF as UNBOUND_CONF
from appliance.services.webmail import NGINX_CONF, PHP_FPM_CONF
from appliance.tls import CertificatePair

log = logging.getLogger("appliance.apply")

CHECK_TIMEOUT_S = 60
RELOAD_FAILED = " FAILED (see docker compose logs)"  # after what apply told a service


@dataclass
class Plan:
    changed: dict[str, list[RenderedFile]] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)  # what was told to pick them up
    warnings: list[str] = field(default_factory=list)  # valid, but probably unwanted
    # a dropped-in TLS certificate the services have not loaded yet
    certificate: CertificatePair | None = field(default=None, repr=False)

    @property
    def new_certificate(self) -> str:
        """Its fingerprint, or "" when the services run the one on the volume."""
        return self.certificate.fingerprint if self.certificate is not None else ""

    @property
    def reload_failed(self) -> bool:
        return any(line.endswith(RELOAD_FAILED) for line in self.reloaded)

    @property
    def services(self) -> list[str]:
        return list(self.changed)


def _real(path: str, root: Path) -> Path:
    return root / path.lstrip("/")


def _current(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def plan(config: Config, root: Path = paths.ROOT) -> Plan:
    p = Plan()
    for service, files in render_all(config).items():
        for f in files:
            target = _real(f.path, root)
            old = _current(target)
            mode_differs = target.exists() and (target.stat().st_mode & 0o7777) != f.mode
            if old == f.text and not mode_differs:
                continue
            p.changed.setdefault(service, []).append(f)
            if f.secret and old != f.text:  # the console and --dry-run show diffs
                p.diffs.append(f"{f.path}: changed (it holds a password: not shown)\n")
                continue
            p.diffs.append("".join(difflib.unified_diff(
                (old or "").splitlines(keepends=True), f.text.splitlines(keepends=True),
                fromfile=f"{f.path} (running)", tofile=f"{f.path} (new)",
            )) or f"mode of {f.path} -> {oct(f.mode)}\n")
    return p


def _chown(path: Path, owner: str, group: str, strict: bool) -> None:
    try:
        uid = pwd.getpwnam(owner).pw_uid
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        if strict:
            raise
        return
    os.chown(path, uid, gid)


def _write(f: RenderedFile, target: Path, strict: bool) -> None:
    write_atomic(target, f.text, mode=f.mode)
    if os.geteuid() == 0:
        _chown(target, f.owner, f.group, strict)


def _run_check(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"{what} check could not run: {e}") from None
    # Checkers print the whole configuration too: report only what they complain about.
    complaints = [
        line for line in proc.stderr.splitlines()
        if any(w in line.lower() for w in ("warning", "fatal", "error"))
    ]
    if proc.returncode != 0 or (what == "postfix" and complaints):
        detail = "; ".join(complaints) or proc.stderr.strip() or f"exit {proc.returncode}"
        raise ConfigError(f"{what} refused the new configuration: {detail}")


def _check_clamconf(conf_dir: Path) -> None:
    # clamconf exits 0 even on an unknown option; it says "ERROR: Parse error ..."
    try:
        proc = subprocess.run(["clamconf", "--config-dir", str(conf_dir)], capture_output=True,
                              text=True, timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"clamav check could not run: {e}") from None
    errors = [line for line in (proc.stdout + proc.stderr).splitlines()
              if line.startswith("ERROR")]
    if proc.returncode != 0 or errors:
        raise ConfigError("clamav refused the new configuration: " +
                          ("; ".join(errors) or f"exit {proc.returncode}"))


def check_staged(staging: Path, changed: dict[str, list[RenderedFile]]) -> None:
    """Run each changed service's own checker against the staged files."""
    if "postfix" in changed:
        conf_dir = staging / "etc/postfix"
        _run_check(["postconf", "-c", str(conf_dir), "-n"], "postfix")
        # -b expands the bounce templates: a broken one is refused here, not at bounce time
        _run_check(["postconf", "-c", str(conf_dir), "-b"], "postfix")
    if "dovecot" in changed:
        _run_check(["doveconf", "-n", "-c", str(staging / "etc/dovecot/dovecot.conf")],
                   "dovecot")
        for script in GLOBAL_SIEVES:
            sieve = staging / script.lstrip("/")
            if sieve.exists() and (problem := compile_sieve(
                    sieve, staging / "etc/dovecot/dovecot.conf")):
                raise ConfigError(f"sievec refused {script}: {problem}")
    if "spamassassin" in changed:
        _run_check(["spamassassin", "--lint", "--siteconfigpath",
                    str(staging / "etc/spamassassin")], "spamassassin")
    if "clamav" in changed:
        _check_clamconf(staging / "etc/clamav")
    if "fetchmail" in changed:
        _run_check(["fetchmail", "--configdump", "--nosyslog", "-f",
                    str(staging / RC.lstrip("/"))], "fetchmail")
    if "webmail" in changed:
        def staged_or_live(path: str) -> str:  # only the changed files are staged
            staged = staging / path.lstrip("/")
            return str(staged if staged.exists() else _real(path, paths.ROOT))

        _run_check(["nginx", "-t", "-q", "-c", staged_or_live(NGINX_CONF)], "nginx")
        _run_check(["php-fpm8.2", "-t", "-y", staged_or_live(PHP_FPM_CONF)], "php-fpm")
    if "unbound" in changed:
        _run_check(["unbound-checkconf", str(staging / UNBOUND_CONF.lstrip("/"))], "unbound")
    if "smtpd" in changed:
        from appliance.smtpd.main import build_state  # the daemons' own loader

        (f,) = changed["smtpd"]
        try:
            build_state(json.loads(f.text))
        except Exception as e:
            raise ConfigError(f"smtpd refused the new settings: {e}") from None


def _stage(config: Config, p: Plan, staging: Path) -> None:
    # Postfix and Dovecot are checked as whole directories: copy the live ones, then
    # overlay our files (includes and maps resolve against the staged copy).
    for service, conf in (("postfix", "etc/postfix"), ("dovecot", "etc/dovecot"),
                          ("spamassassin", "etc/spamassassin"), ("clamav", "etc/clamav")):
        if service in p.changed and (paths.ROOT / conf).is_dir():
            shutil.copytree(paths.ROOT / conf, staging / conf, symlinks=True,
                            dirs_exist_ok=True)
    for files in p.changed.values():
        for f in files:
            target = staging / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.text, encoding="utf-8")
            target.chmod(f.mode)  # checkers such as fetchmail refuse an open secret file
    # Paths inside the staged Postfix main.cf point at the live maps; rewrite them to
    # the staged ones so a broken map is caught here.
    main_cf = staging / "etc/postfix/main.cf"
    if main_cf.exists():
        main_cf.write_text(
            main_cf.read_text().replace("/etc/postfix/", f"{staging}/etc/postfix/")
        )


def _programs() -> set[str]:
    """supervisord's programs that are running or starting now."""
    from appliance.status import services  # the one parser of `supervisorctl status`

    try:
        return {s.name for s in services() if s.state in ("RUNNING", "STARTING")}
    except (OSError, subprocess.SubprocessError) as e:
        log.error("cannot ask supervisord which programs run: %s", e)
        return set()


def sieve_stale(script: Path, changed: bool) -> bool:
    """Whether a script of ours needs compiling: it or dovecot.conf changed (settings
    such as the duplicate period apply at compile time), or its binary is missing or
    older (a failed compile, a deleted file). Dovecot cannot write the binary itself."""
    if not script.exists():
        return False
    binary = script.with_suffix(".svbin")
    return changed or not binary.exists() or binary.stat().st_mtime < script.stat().st_mtime


def compile_sieve(script: Path, dovecot_conf: Path) -> str | None:
    """Compile a Sieve script next to itself (Dovecot cannot write there), with the
    settings of that dovecot.conf; None if it compiled, else sievec's complaint."""
    proc = subprocess.run(["sievec", "-c", str(dovecot_conf), str(script)], check=False,
                          capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()


def reload_services(services: list[str], previous_smtpd: dict | None, new_smtpd: dict | None,
                    changed_paths: frozenset[str] = frozenset(),
                    config: Config | None = None, certificate: str = "") -> list[str]:
    """Tell running services to pick up their new files; returns what was done.
    CERTIFICATE: the fingerprint of a new pair, installed for the SMTP daemons, which
    re-read it on SIGHUP (a daemon that does not say it serves it is restarted)."""
    done: list[str] = []
    if not paths.SUPERVISOR_SOCKET.exists():
        return done  # nothing runs yet (first boot renders before supervisord starts)
    if "network" in services and config is not None:
        from appliance.services.network.interfaces import NetworkError, apply_mtu

        try:
            if said := apply_mtu(config):
                done.append(f"network: {said}")
        except NetworkError as e:  # the MSS clamp in smtpd.json applies anyway
            log.error("%s", e)
            done.append(f"network: {e}")

    def run(*argv: str) -> bool:
        try:
            proc = subprocess.run(argv, check=False, capture_output=True, text=True,
                                  timeout=CHECK_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.error("%s failed: %s", " ".join(argv), e)
            return False
        if proc.returncode != 0:  # the files are in place; say loudly what did not reload
            log.error("%s failed (exit %d): %s", " ".join(argv), proc.returncode,
                      (proc.stdout + proc.stderr).strip())
        return proc.returncode == 0

    def ctl(*args: str) -> bool:
        return run("supervisorctl", *args)

    def said(what: str, ok: bool) -> None:
        """What was done, as the console and the CLI show it: a failure is said too."""
        done.append(what if ok else what + RELOAD_FAILED)

    if "supervisord" in services:
        said("supervisord: update", ctl("reread") & ctl("update"))
    # after `update`: it may just have started, restarted or removed programs
    running = _programs() if {"spamassassin", "clamav"} & set(services) else set()
    if "unbound" in services:
        # A reload keeps port 53 open: lookups made meanwhile wait in the socket and are
        # answered, where a restart left a moment in which they failed (and mail got a
        # 451). A restart remains for an Unbound that is not running or will not reload.
        if run("unbound-control", "-c", UNBOUND_CONF, "reload"):
            done.append("unbound: reload")
        else:  # run() logged why
            said("unbound: restart", ctl("restart", "unbound"))
    if "postfix" in services:
        said("postfix: reload", run("postfix", "reload"))
    if "dovecot" in services or certificate:
        said("dovecot: reload", run("doveadm", "reload"))
    if "webmail" in services or certificate:
        web = _programs()
        if "nginx" in web:
            # new workers with the new files, no drop
            said("nginx: reload", ctl("signal", "HUP", "nginx"))
        if "php-fpm" in web:
            said("php-fpm: reload", ctl("signal", "USR2", "php-fpm"))  # graceful
    if "spamassassin" in services and "spamd" in running:
        said("spamd: reload", ctl("signal", "HUP", "spamd"))  # it re-reads local.cf
    # clamd reads its configuration only at start (mail is deferred meanwhile): restart
    # each program only for its own file
    for program, conf in (("clamd", CLAMD_CONF), ("freshclam", FRESHCLAM_CONF)):
        if program in running and conf in changed_paths:
            said(f"{program}: restart", ctl("restart", program))
    if ("smtpd" in services and new_smtpd is not None) or (certificate and config is not None):
        hupped = []
        for daemon in SMTP_DAEMONS:
            new = new_smtpd["daemons"][daemon] if new_smtpd is not None else None
            old = (previous_smtpd or {}).get("daemons", {}).get(daemon)
            if not (new["enabled"] if new is not None else
                    config.data["smtpd"][daemon]["enabled"]):  # type: ignore[union-attr]
                continue
            if new is not None and old != new:
                # Listener settings (port, TLS versions, caps) need a fresh process.
                said(f"smtpd-{daemon}: restart", ctl("restart", f"smtpd-{daemon}"))
            else:
                # SIGHUP re-reads the settings and the certificate; sessions stay open
                if ctl("signal", "HUP", f"smtpd-{daemon}"):
                    hupped.append(daemon)
                else:
                    said(f"smtpd-{daemon}: reload", False)
        late = set(_not_serving(hupped, certificate)) if certificate else set()
        for daemon in hupped:
            if daemon in late:  # its reload failed (it logged why): a restart loads it
                said(f"smtpd-{daemon}: restart (the reload kept the old certificate)",
                     ctl("restart", f"smtpd-{daemon}"))
            else:
                done.append(f"smtpd-{daemon}: reload")
    return done


SERVING_WAIT_S = 10.0


def _not_serving(daemons: list[str], certificate: str,
                 wait: float = SERVING_WAIT_S) -> list[str]:
    """Those DAEMONS that have not said (in SMTPD_TLS/serving-NAME) they serve the
    CERTIFICATE within WAIT seconds of their SIGHUP."""
    deadline = time.monotonic() + wait
    pending = list(daemons)
    while pending:
        pending = [d for d in pending if (_current(paths.SMTPD_TLS / f"serving-{d}") or
                                          "").strip() != certificate]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return pending


@contextmanager
def _lock() -> Iterator[None]:
    lock_dir = Path("/run/appliance") if paths.ROOT == Path("/") else paths.ROOT / "run"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "apply.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def apply(config: Config, *, dry_run: bool = False, check: bool = True,
          reload: bool = True) -> Plan:
    """Make the running services match `config`. Raises ConfigError, changing nothing."""
    with _lock():
        return _apply_recorded(config, dry_run=dry_run, check=check, reload=reload)


def commit(config: Config, *, dry_run: bool = False, check: bool = True) -> Plan:
    """An edited configuration (CLI, SME commands, console): validate the document as
    it would be written, apply it, and only then write appliance.toml, all under the
    apply lock so two edits cannot interleave. Raises ConfigError, changing nothing."""
    text = tomlkit.dumps(config.document)
    new = parse(text, paths.CONFIG)
    for table in ACCOUNT_COLLECTIONS:  # a file may keep one it had (a warning), not add one
        for name in new.data[table].keys() - config.data[table].keys():
            if problem := reserved_name_problem(table, name):
                raise ConfigError(problem, key=f"{table}.{name}")
    with _lock():
        if config.source is not None and (now := _current(paths.CONFIG)) != config.source:
            raise ConfigError("changed by someone else since it was read; nothing was "
                              "applied: make the change again "
                              f"({_what_changed(config.source, now)})", file=paths.CONFIG)
        p = _apply_recorded(new, dry_run=dry_run, check=check, reload=True)
        if not dry_run:
            write_atomic(paths.CONFIG, text, mode=0o600)
    return p


def _what_changed(before: str, now: str | None) -> str:
    """Which lines differ (keys only: values may be passwords), so whoever sees the
    refusal can tell what the other edit was."""
    if now is None:
        return "the file is gone"
    keys = []
    for line in difflib.unified_diff(before.splitlines(), now.splitlines(), lineterm="", n=0):
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            key = line[1:].split("=", 1)[0].strip() or "(blank line)"
            if key not in keys:
                keys.append(key)
    return "differs at " + ", ".join(keys[:6]) if keys else "only white space differs"


def _apply_recorded(config: Config, *, dry_run: bool, check: bool, reload: bool) -> Plan:
    """_apply(), then keep CONFIG as the last good configuration (appliance.recovery).
    After a boot that found none and started no service, the first good one renders
    as at a boot and starts them all instead of reloading."""
    from appliance import recovery

    waiting = reload and not dry_run and recovery.waiting()
    if waiting:
        from appliance.boot import prepare

        prepare(config)  # the first boot's certificate and keys, which rendering needs
    p = _apply(config, dry_run=dry_run, check=check, reload=reload and not waiting)
    if dry_run:
        return p
    if waiting:
        from appliance.boot import start_waiting_services

        p.reloaded = start_waiting_services(config)
        for line in p.reloaded:
            log.info("%s", line)
        if p.reload_failed:  # still waiting: the next apply starts them again
            recovery.remember(config)
            return p
    elif p.reload_failed:
        # a service refused it (or did not hear of it): not a good configuration yet;
        # the last good copy and any boot fallback stay until an apply fully succeeds
        return p
    recovery.applied(config)
    return p


def _apply(config: Config, *, dry_run: bool, check: bool, reload: bool) -> Plan:
    """apply() without taking the lock (the caller holds it)."""
    root = paths.ROOT
    strict = root == Path("/")
    p = plan(config, root)
    from appliance.services.network.interfaces import forwarder_warning

    warnings = reserved_name_warnings(config.data)  # loaded from before they were reserved
    if warning := forwarder_warning(config.data["network"]["dns_forwarders"], config):
        warnings.append(warning)
    for warning in warnings:
        p.warnings.append(warning)
        log.warning("%s", warning)
    if strict:
        _check_certificate(p)
    if dry_run or not (p.changed or p.new_certificate):
        return p
    if check:
        with tempfile.TemporaryDirectory(prefix="appliance-stage-") as tmp:
            _stage(config, p, Path(tmp))
            check_staged(Path(tmp), p.changed)
    previous = None
    if "smtpd" in p.changed:
        old_text = _current(_real(paths.SMTPD_JSON, root))
        previous = json.loads(old_text) if old_text else None
    for files in p.changed.values():
        for f in files:
            _write(f, _real(f.path, root), strict)
    changed_paths = {f.path for f in p.changed.get("dovecot", [])}
    for script in GLOBAL_SIEVES if strict else ():
        # checked in the staging tree above: a failure here is the file system's
        if sieve_stale(_real(script, root), script in changed_paths or
                       "/etc/dovecot/dovecot.conf" in changed_paths) and (
                problem := compile_sieve(_real(script, root),
                                         _real("/etc/dovecot/dovecot.conf", root))):
            log.error("sievec %s failed: %s", script, problem)
    if p.certificate is not None:
        from appliance.services.smtpd import RUN_AS
        from appliance.tls import install_for_smtpd

        try:
            install_for_smtpd(p.certificate, paths.SMTPD_TLS, RUN_AS)
        except OSError as e:  # /run is the container's own: this is not the admin's doing
            raise ConfigError(f"cannot install the certificate for the SMTP daemons: {e}; "
                              "nothing was reloaded") from None
    if reload:
        new = json.loads(p.changed["smtpd"][0].text) if "smtpd" in p.changed else None
        p.reloaded = reload_services(p.services, previous, new, frozenset(
            f.path for files in p.changed.values() for f in files), config,
            certificate=p.new_certificate)
        for line in p.reloaded:
            log.info("%s", line)
    if p.new_certificate and not p.reload_failed:  # else the next apply tries again
        write_atomic(paths.TLS_IN_USE, p.new_certificate + "\n", mode=0o644)
    return p


def _check_certificate(p: Plan) -> None:
    """Set p.certificate when tls/cert.pem or key.pem differ from what the services
    loaded (a dropped-in certificate); ConfigError, changing nothing, if the services
    could not load them. An expired certificate is a warning."""
    from appliance.tls import check_pair

    try:
        pair = check_pair(paths.TLS_CERT, paths.TLS_KEY)
    except ValueError as e:
        raise ConfigError(f"TLS certificate: {e}; nothing was applied") from None
    if pair.expires < dt.datetime.now(dt.UTC):
        p.warnings.append(f"the TLS certificate {paths.TLS_CERT} expired on "
                          f"{pair.expires:%Y-%m-%d}: clients will refuse it")
        log.warning("%s", p.warnings[-1])
    from appliance.tls import installed_for_smtpd

    if (_current(paths.TLS_IN_USE) or "").strip() != pair.fingerprint or \
            not installed_for_smtpd(pair, paths.SMTPD_TLS):
        p.certificate = pair
        p.diffs.append(f"{paths.TLS_CERT} and {paths.TLS_KEY}: a new certificate for "
                       "every TLS service\n")
