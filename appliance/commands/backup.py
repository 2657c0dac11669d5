"""`appliance backup` / `appliance restore`: the whole data volume as one archive.

The archive (tar.gz) holds everything that makes this appliance itself: appliance.toml,
TLS and DKIM keys, the Maildirs, Postfix's queue and the SMTP daemons' databases, with
owners and modes. From the host:

    docker compose exec -T appliance appliance backup > backup.tar.gz
    docker compose exec -T appliance appliance restore < backup.tar.gz

Backup stops Postfix and Dovecot while it reads (seconds for a small office), so no
message is half-written in the archive; meanwhile senders get 4xx and retry. Restore
unpacks beside the live data, checks that the archive's appliance.toml is valid, and
only then stops the services, swaps the volume's contents and starts them again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from appliance import paths
from appliance.config import ConfigError, load
from appliance.migrations import version as volume_version

QUIESCE = ("postfix", "dovecot")  # the writers of queue and mailboxes
RESTORE_PREFIX = ".restore-"


def _ctl(*args: str) -> None:
    """supervisorctl; a failure is an error (a service left stopped must be said)."""
    if not paths.SUPERVISOR_SOCKET.exists():
        return  # nothing supervised runs (tests, or before first boot)
    proc = subprocess.run(["supervisorctl", *args], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise ConfigError(f"supervisorctl {' '.join(args)} failed: "
                          f"{(proc.stdout + proc.stderr).strip()}")


@contextmanager
def quiesced(programs: tuple[str, ...]) -> Iterator[None]:
    """Stop `programs` for the block and always start them again."""
    try:
        _ctl("stop", *programs)
        yield
    finally:
        _ctl("start", *programs)


def backup(out: BinaryIO) -> int:
    """Write the archive to `out`; returns how many files it holds."""
    count = 0
    with quiesced(QUIESCE), tarfile.open(fileobj=out, mode="w|gz") as tar:
        for root, dirs, files in os.walk(paths.DATA):
            dirs[:] = sorted(d for d in dirs if not d.startswith(RESTORE_PREFIX))
            for name in sorted(dirs) + sorted(files):
                full = Path(root) / name
                arcname = str(full.relative_to(paths.DATA))
                info = tar.gettarinfo(str(full), arcname)
                if info is None:  # sockets: the services make them again
                    continue
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                count += 1
    return count


def _safe_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members that stay inside the destination (no absolute paths, '..' or wild links)."""
    for m in tar:
        path = PurePosixPath(m.name)
        if path.is_absolute() or ".." in path.parts:
            raise ConfigError(f"archive member {m.name!r} points outside the data volume")
        if m.issym() or m.islnk():
            target = PurePosixPath(m.linkname)
            if target.is_absolute() or ".." in target.parts:
                raise ConfigError(f"archive link {m.name!r} -> {m.linkname!r} points outside")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.isfifo()):
            continue
        yield m


def restore(src: BinaryIO) -> Path:
    """Replace the data volume with the archive's content; returns the restored toml."""
    paths.DATA.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=RESTORE_PREFIX, dir=paths.DATA))
    try:
        try:
            with tarfile.open(fileobj=src, mode="r|gz") as tar:
                for member in _safe_members(tar):
                    tar.extract(member, staging, set_attrs=True)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ConfigError(f"not a backup archive of this appliance: {e}") from None
        toml = staging / paths.CONFIG.name
        if not toml.exists():
            raise ConfigError("not a backup of this appliance: no appliance.toml inside")
        _check_format(staging)
        load(toml)  # refuse an archive whose configuration would not start
        with quiesced_all():
            _swap_in(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths.CONFIG


def _check_format(staging: Path) -> None:
    """Only a backup of this volume format is restored: an older one would skip the
    migrations a boot runs, a newer one would leave a volume this image refuses."""
    try:
        found = volume_version.read(staging / paths.VERSION.name)
    except volume_version.VersionUnreadable as e:
        raise ConfigError(f"the backup's VERSION is unreadable ({e}); nothing was changed")\
            from None
    have = found.format if found else 1
    if have != volume_version.CURRENT_FORMAT:
        made_by = (found.written_by if found else "") or volume_version.FORMAT_1
        raise ConfigError(
            f"this backup is of a format {have} volume ({made_by}); this image restores "
            f"format {volume_version.CURRENT_FORMAT}: restore it with the image that made "
            "it, then start this one on the volume, which upgrades it (README: "
            "Upgrading); nothing was changed")


@contextmanager
def quiesced_all() -> Iterator[None]:
    """Stop every service; start them again only if the block fails (on success the
    caller renders the restored configuration first: restart_after_restore)."""
    _ctl("stop", "all")
    try:
        yield
    except BaseException:
        _ctl("start", "all")
        raise


def _swap_in(staging: Path) -> None:
    """Replace the volume's entries with staging's; on failure put the old ones back."""
    old = paths.DATA / f"{RESTORE_PREFIX}old"
    shutil.rmtree(old, ignore_errors=True)
    old.mkdir()
    moved: list[str] = []
    try:
        for entry in paths.DATA.iterdir():
            if not entry.name.startswith(RESTORE_PREFIX):
                entry.rename(old / entry.name)
        for entry in staging.iterdir():
            entry.rename(paths.DATA / entry.name)
            moved.append(entry.name)
    except OSError:
        for name in moved:
            (paths.DATA / name).rename(staging / name)
        for entry in old.iterdir():
            entry.rename(paths.DATA / entry.name)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def restart_after_restore() -> list[str]:
    """Render the restored configuration and start every service on it."""
    from appliance.apply import apply
    from appliance.boot import prepare_volume
    from appliance.services.postfix import Postfix

    prepare_volume()
    config = load(paths.CONFIG)
    plan = apply(config, reload=False)
    # the queue's owners as a boot fixes them (the archive's ids may be another image's)
    Postfix().starting(config)
    _ctl("reread")
    _ctl("update")
    _ctl("start", "all")
    return plan.services


def run_backup(args: argparse.Namespace) -> int:
    """`appliance backup [FILE]`: to FILE (mode 0600) or to standard output."""
    if args.file in (None, "-"):
        if sys.stdout.isatty():
            raise ConfigError("the archive is binary: redirect it (appliance backup > FILE)")
        sys.stdout.flush()
        count = backup(sys.stdout.buffer)
    else:
        # keys, password hashes and service passwords: readable by its owner only
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            count = backup(f)
    print(f"backup: {count} files and folders of {paths.DATA}", file=sys.stderr)
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """`appliance restore [FILE]`: from FILE or from standard input."""
    if args.file in (None, "-"):
        restore(sys.stdin.buffer)
    else:
        with open(args.file, "rb") as f:
            restore(f)
    services = restart_after_restore()
    print("restore: done; rendered " + (", ".join(services) or "nothing new") +
          "; every service restarted")
    return 0
