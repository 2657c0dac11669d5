"""`appliance apply`: render, check, swap atomically, reload only what changed.

Under one lock, for every service of the registry (appliance/services/), in its order:

1. plan: render its files from the validated config (pure) and compare them with what
   is on disk; an unchanged service is left alone;
2. stage and check: write the changed files into a staging tree and run each changed
   service's own checker; a failure stops here and the running configuration stays;
3. write: move each changed file into place (rename: readers see old or new, never half)
   and let each service install what its files need (Sieve binaries, a certificate);
4. reload: each changed service tells its programs (and a new TLS certificate reaches
   every service that serves TLS). What each did is returned as lines to show.

This module names no service: what a service does is in its own module.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fcntl
import grp
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from appliance import paths
from appliance.config import Config, ConfigError, parse, write_atomic
from appliance.config.load import reserved_name_problem, reserved_name_warnings
from appliance.config.schema import ACCOUNT_COLLECTIONS
from appliance.services.base import (
    RELOAD_FAILED,
    Change,
    RenderedFile,
    Runner,
    Staged,
    run_command,
)
from appliance.services.registry import SERVICES, render_all
from appliance.tls import CertificatePair

log = logging.getLogger("appliance.apply")

__all__ = ["RELOAD_FAILED", "Plan", "apply", "commit", "plan"]


@dataclass
class Plan:
    changed: dict[str, list[RenderedFile]] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)  # what was told to pick them up
    warnings: list[str] = field(default_factory=list)  # valid, but probably unwanted
    # each changed file's text on disk when planned (None: none), as reload compares it
    previous: dict[str, str | None] = field(default_factory=dict, repr=False)
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
            p.previous[f.path] = old
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


def check_staged(staging: Path, changed: dict[str, list[RenderedFile]],
                 run: Runner = run_command) -> None:
    """Run each changed service's own checker against the staged files."""
    for service in SERVICES:
        if service.name in changed:
            service.check(Staged(staging, paths.ROOT, tuple(changed[service.name])), run)


def _stage(p: Plan, staging: Path) -> None:
    # A service checked as a whole folder (includes, maps) gets a copy of the live one,
    # then our files on top.
    for service in SERVICES:
        if service.name not in p.changed:
            continue
        for folder in service.stage_dirs:
            live = _real(folder, paths.ROOT)
            if live.is_dir():
                shutil.copytree(live, _real(folder, staging), symlinks=True,
                                dirs_exist_ok=True)
    for files in p.changed.values():
        for f in files:
            target = _real(f.path, staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.text, encoding="utf-8")
            target.chmod(f.mode)  # checkers such as fetchmail refuse an open secret file


def _programs() -> set[str]:
    """supervisord's programs that are running or starting now."""
    from appliance.status import services  # the one parser of `supervisorctl status`

    try:
        return {s.name for s in services() if s.state in ("RUNNING", "STARTING")}
    except (OSError, subprocess.SubprocessError) as e:
        log.error("cannot ask supervisord which programs run: %s", e)
        return set()


def _changes(config: Config, p: Plan, root: Path) -> dict[str, Change]:
    """Each service's Change, with its files as the plan found them on disk."""
    every = frozenset(f.path for files in p.changed.values() for f in files)
    asked: list[set[str]] = []

    def running() -> set[str]:  # asked once, by the first service that needs it
        if not asked:
            asked.append(_programs())
        return asked[0]

    out = {}
    for service in SERVICES:
        files = tuple(p.changed.get(service.name, ()))
        out[service.name] = Change(
            config, files, every, {f.path: p.previous.get(f.path) for f in files},
            certificate=p.certificate, live=root, running=running)
    return out


def reload_services(changes: dict[str, Change], run: Runner = run_command) -> list[str]:
    """Tell running services to pick up their new files; returns what was done. A new
    certificate reaches every service that serves TLS, changed or not."""
    if not paths.SUPERVISOR_SOCKET.exists():
        return []  # nothing runs yet (first boot renders before supervisord starts)
    done: list[str] = []
    for service in SERVICES:
        change = changes[service.name]
        if change.changed or (change.certificate is not None and service.uses_certificate):
            done += service.reload(change, run)
    return done


@contextmanager
def lock() -> Iterator[None]:
    """The apply lock: no apply (or commit) runs while it is held. Also held by whoever
    replaces the certificate files (ACME renewal), so no apply reads half a swap."""
    lock_dir = Path("/run/appliance") if paths.ROOT == Path("/") else paths.ROOT / "run"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "apply.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def apply(config: Config, *, dry_run: bool = False, check: bool = True,
          reload: bool = True) -> Plan:
    """Make the running services match `config`. Raises ConfigError, changing nothing."""
    with lock():
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
    with lock():
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
        from appliance.boot import setup

        setup(config)  # the first boot's certificate and keys, which rendering needs
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
    warnings = reserved_name_warnings(config.data)  # loaded from before they were reserved
    for service in SERVICES:
        warnings += service.warnings(config)
    for warning in warnings:
        p.warnings.append(warning)
        log.warning("%s", warning)
    if strict:
        _check_certificate(p)
    if dry_run or not (p.changed or p.new_certificate):
        return p
    if check:
        with tempfile.TemporaryDirectory(prefix="appliance-stage-") as tmp:
            _stage(p, Path(tmp))
            check_staged(Path(tmp), p.changed)
    changes = _changes(config, p, root)
    for files in p.changed.values():
        for f in files:
            _write(f, _real(f.path, root), strict)
    for service in SERVICES:  # a ConfigError here: the files are written, none reloaded
        service.install(changes[service.name], run_command)
    if reload:
        p.reloaded = reload_services(changes)
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
    if (_current(paths.TLS_IN_USE) or "").strip() != pair.fingerprint or \
            not all(service.serves(pair) for service in SERVICES if service.uses_certificate):
        p.certificate = pair
        p.diffs.append(f"{paths.TLS_CERT} and {paths.TLS_KEY}: a new certificate for "
                       "every TLS service\n")
