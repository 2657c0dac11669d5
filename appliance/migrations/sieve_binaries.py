"""Step: the users' compiled Sieve scripts go, so Dovecot 2.4 compiles them anew.

Pigeonhole keeps a binary (`.svbin`) beside each script in the user's home on the volume
(~/sieve/NAME.svbin, ~/.dovecot.svbin). A binary of the old Pigeonhole is at best
recompiled when Dovecot notices its version, at worst refused; without one, Dovecot
compiles the script when it next runs it (the next delivery, as vmail, who owns the
home) and saves the new binary there. So the step only deletes them.

It does not run sievec itself: the boot renders dovecot.conf (which says where the
scripts are and which extensions they may use) only later, after the migration, and
sievec with the old file, or none, would compile against the wrong settings. The global
scripts (/etc/dovecot/sieve, in the image) are compiled by the dovecot service's
install step on every apply, as before. Archived homes (paths.MAIL_ARCHIVE) are
treated as the users' homes are: an archive may become a user's mailbox again.
"""

from __future__ import annotations

from pathlib import Path

from appliance import paths
from appliance.migrations.journal import Journal
from appliance.migrations.step import Step


def binaries() -> list[Path]:
    found: list[Path] = []
    for top in (paths.MAIL_DIR, paths.MAIL_ARCHIVE):
        if not top.is_dir():
            continue
        for home in sorted(p for p in top.iterdir() if p.is_dir() and not p.is_symlink()):
            found.extend(sorted(home.glob("sieve/**/*.svbin")))
            found.extend(sorted(home.glob(".*.svbin")))  # .dovecot.svbin, the active one
    return [p for p in found if p.is_file() and not p.is_symlink()]


def remove_binaries(journal: Journal) -> list[str]:
    found = binaries()
    homes = {p.relative_to(paths.DATA).parts[1] for p in found}
    for binary in found:
        journal.keep(binary)
        binary.unlink()
    if not found:
        return ["no compiled Sieve script on the volume"]
    return [f"removed {len(found)} compiled Sieve script(s) of {len(homes)} home(s); "
            "Dovecot compiles each script again when it next runs it"]


STEP = Step(2, "sieve-binaries", "Sieve binaries of Pigeonhole 0.5 (Dovecot 2.3) removed",
            remove_binaries)
