"""Step: the SpamAssassin Bayes database must open under the new SpamAssassin.

The database (paths.SPAMASSASSIN_DIR/bayes/bayes_*, Berkeley DB files through Perl's
DB_File) is read with this image's `sa-learn --dump magic`, read-only, as root (so an
owner that differs between images cannot fail it: the spamassassin service's prepare
fixes owners afterwards) and with a scratch HOME (sa-learn makes ~/.spamassassin). If
it opens, it stays as it is. If it does not, the old files move aside to
`bayes.formatN-1/` (kept, to learn from again or to give back to the old image) and
Bayes starts fresh, with a warning in the log.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile

from appliance import paths
from appliance.migrations.journal import Journal
from appliance.migrations.step import Step

log = logging.getLogger("appliance.migrate")

SA_LEARN_TIMEOUT_S = 120


def database_opens(prefix: str) -> tuple[bool, str]:
    """Whether this image's sa-learn reads the database at PREFIX (bayes_toks etc.),
    and what it said."""
    with tempfile.TemporaryDirectory(prefix="sa-learn-") as home:
        proc = subprocess.run(
            ["sa-learn", "--dbpath", prefix, "--dump", "magic"],
            capture_output=True, text=True, timeout=SA_LEARN_TIMEOUT_S, check=False,
            env={"HOME": home, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
    said = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0 and "non-token data: nspam" in proc.stdout, said


def check_bayes(journal: Journal) -> list[str]:
    folder = paths.SPAMASSASSIN_DIR / "bayes"
    if not (folder / "bayes_toks").exists():
        return ["no Bayes database on the volume"]
    if shutil.which("sa-learn") is None:
        return ["sa-learn is not installed here: the Bayes database is left as it is"]
    opens, said = database_opens(str(folder / "bayes"))
    if opens:
        return ["the Bayes database opens with this SpamAssassin: kept as it is"]
    aside = folder.with_name(f"bayes.format{STEP.to_format - 1}")
    journal.keep(folder)
    journal.create(aside)
    folder.rename(aside)
    folder.mkdir()
    shutil.copystat(aside, folder)
    shutil.chown(folder, aside.stat().st_uid, aside.stat().st_gid)
    log.warning("migrate: this SpamAssassin cannot read the Bayes database (%s): Bayes "
                "starts fresh; the old files are kept in %s", (said.splitlines() or ["?"])[-1],
                aside)
    return [f"the Bayes database does not open with this SpamAssassin: moved to {aside}; "
            "Bayes starts fresh"]


STEP = Step(2, "bayes", "SpamAssassin's Bayes database checked with this sa-learn",
            check_bayes)
