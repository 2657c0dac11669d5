"""The data volume's format and the boot's migrations from one format to the next.

The volume records its format in VERSION (appliance/migrations/version.py). At boot,
before anything touches the volume, `at_boot()`:

1. refuses a volume of a newer format than this image's (or an unreadable VERSION),
   changing nothing;
2. rolls back the journal a killed migration left (journal.py), unless that migration
   had already written its VERSION;
3. writes VERSION on a new volume; takes a used volume without one as format 1 (the
   Debian 12 images wrote none);
4. runs each step from the volume's format to this image's, in order, logging each
   (`migrate: format 1 -> 2: ...`). The steps are one transaction: if one raises,
   the journal puts back every path any step changed, VERSION stays as it was, and
   the boot stops. Only when every step succeeded is VERSION written, then the journal
   removed.

A step is one module (step.py says what it is): STEPS below is the order. A release
that changes the format raises CURRENT_FORMAT and appends its steps; one that renames
a key of appliance.toml adds a row to the schema's KEY_HISTORY and `toml_keys.step(N)`.

What needs no step, because the services do it on every boot (which also covers a
restored backup): Postfix's queue owners (services/postfix.py, `postfix
set-permissions` when its folders are not the postfix user's), Roundcube's SQLite
schema (the webmail service's starting() runs Roundcube's updatedb.sh once its
configuration is rendered), Dovecot's indexes
(2.4 reads 2.3's: it changes storage formats only when dovecot_storage_version says so).
DKIM and TLS keys are never touched.
"""

from __future__ import annotations

import logging

from appliance import paths
from appliance.migrations import bayes, sieve_binaries, toml_keys
from appliance.migrations.journal import Journal
from appliance.migrations.step import Step
from appliance.migrations.version import (
    CURRENT_FORMAT,
    FORMAT_1,
    VersionUnreadable,
    VolumeVersion,
    read,
    this_release,
    write,
)

__all__ = ["CURRENT_FORMAT", "STEPS", "MigrationError", "Step", "at_boot"]

log = logging.getLogger("appliance.migrate")

STEPS: tuple[Step, ...] = (
    # format 1 -> 2: Debian 12 -> 13 (Dovecot 2.4, SpamAssassin 4.0)
    toml_keys.step(2),
    sieve_binaries.STEP,
    bayes.STEP,
)


class MigrationError(Exception):
    """The boot must stop: the message says why and that the volume is as it was."""


def at_boot(volume_used: bool) -> None:
    """Bring the volume to CURRENT_FORMAT, or raise MigrationError having changed
    nothing. VOLUME_USED: whether the volume was used before (a volume without VERSION
    is then format 1, else a new one)."""
    try:
        version = read()
    except VersionUnreadable as e:
        raise MigrationError(
            f"{paths.VERSION} is unreadable ({e}): cannot tell which release wrote this "
            f"volume; nothing was changed. Restore it (a volume of this image says "
            f"`format {CURRENT_FORMAT}`) or run the image that wrote the volume") from None
    if version is not None and version.format > CURRENT_FORMAT:
        raise MigrationError(
            f"this volume was written by appliance format {version.format} / release "
            f"{version.written_by or 'unknown'}, newer than this image (format "
            f"{CURRENT_FORMAT}, {this_release()}): run that image or newer; nothing was "
            "changed")
    _finish_leftover(version)
    if version is None:
        if not volume_used:
            write()
            log.info("new volume: format %d (%s)", CURRENT_FORMAT, this_release())
            return
        version = VolumeVersion(1, FORMAT_1)
        log.info("migrate: this volume has no VERSION: format 1 (%s)", FORMAT_1)
    if version.format == CURRENT_FORMAT:
        if version.written_by != this_release():
            write()  # the same format, another release: who wrote it last
        return
    migrate(version)


def _finish_leftover(version: VolumeVersion | None) -> None:
    """The journal a killed container left: rolled back, unless its migration had
    written VERSION (then only the journal's removal was lost)."""
    journal = Journal.leftover()
    if journal is None:
        return
    if version is not None and version.format == journal.target():
        journal.close()
        log.info("migrate: removed the journal of the finished migration to format %d",
                 version.format)
        return
    log.warning("migrate: a migration was interrupted (%d change(s) recorded): undoing "
                "it before trying again", len(journal.entries))
    try:
        journal.rollback()
    except Exception as e:  # noqa: BLE001 - whatever it was, the boot must not go on
        raise MigrationError(
            f"undoing the interrupted migration failed: {type(e).__name__}: {e}; the "
            f"journal stays in {journal.folder} for the next boot") from e
    log.info("migrate: the interrupted migration is undone: the volume is as it was")


def migrate(version: VolumeVersion) -> None:
    """Every step from VERSION's format to CURRENT_FORMAT, as one transaction."""
    steps = [s for s in STEPS if version.format < s.to_format <= CURRENT_FORMAT]
    log.info("migrate: volume format %d (%s) -> %d (%s): %d step(s)", version.format,
             version.written_by or "unknown", CURRENT_FORMAT, this_release(), len(steps))
    journal = Journal.begin(CURRENT_FORMAT)
    for step in steps:
        prefix = f"migrate: format {step.to_format - 1} -> {step.to_format}"
        log.info("%s: %s", prefix, step.description)
        try:
            for line in step.run(journal):
                log.info("%s: %s", prefix, line)
        except Exception as e:  # noqa: BLE001 - any failure undoes the migration
            log.error("migration step %s failed", step.name, exc_info=e)
            try:
                journal.rollback()
            except Exception as undo:  # noqa: BLE001
                raise MigrationError(
                    f"migration step {step.name} failed: {type(e).__name__}: {e}; undoing "
                    f"it failed too ({type(undo).__name__}: {undo}): the journal stays in "
                    f"{journal.folder} and the next boot tries again") from e
            raise MigrationError(
                f"migration step {step.name} failed: {type(e).__name__}: {e}; the volume "
                f"is as it was (format {version.format})") from e
    write()
    journal.close()
    log.info("migrate: the volume is format %d now", CURRENT_FORMAT)
