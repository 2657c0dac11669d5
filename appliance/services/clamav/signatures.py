"""ClamAV on the appliance: starting clamd once it has signatures, and their status.

clamd refuses to start without a signature database, and a new appliance without
internet access has none until freshclam reaches its mirror (or the admin drops
.cvd/.cld or .ndb/.hdb files into the database folder). `appliance clamd`, run by
supervisord, waits for them, saying so in the log, then becomes clamd. Meanwhile the
clamav plugin defers mail (451) rather than accept it unscanned, and `appliance status`
names the problem.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import pwd
import re
import time
from pathlib import Path

from appliance import paths
from appliance.services.clamav import CLAMD_CONF
from appliance.services.clamav.client import ClamdError, version

log = logging.getLogger("appliance.clamd")

# files clamd loads signatures from (clamd's database formats)
SIGNATURE_SUFFIXES = {".cvd", ".cld", ".cud", ".ndb", ".ndu", ".hdb", ".hdu", ".hsb", ".hsu",
                      ".mdb", ".mdu", ".msb", ".msu", ".ldb", ".ldu", ".cdb", ".idb", ".pdb",
                      ".gdb", ".wdb", ".cbc", ".yar", ".yara"}
WAIT_S = 5
STALE_DAYS = 7


def signature_files(db: Path | None = None) -> list[Path]:
    db = db or paths.CLAMAV_DB
    try:
        return sorted(p for p in db.iterdir() if p.suffix in SIGNATURE_SUFFIXES
                      and p.is_file() and p.stat().st_size > 0)
    except OSError:
        return []


def prepare_dirs() -> None:
    clamav = pwd.getpwnam(paths.CLAMAV_USER)
    for folder in (paths.CLAMAV_DB, paths.CLAMD_SOCKET.parent):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, clamav.pw_uid, clamav.pw_gid)


def run_clamd() -> int:
    """Wait for signatures, then exec clamd in the foreground (supervisord's child)."""
    logging.basicConfig(level=logging.INFO, format="clamd: %(message)s")
    prepare_dirs()
    if not signature_files():
        log.warning("no virus signatures in %s yet: clamd waits, and mail is deferred "
                    "(451) until freshclam downloads them or signature files are put "
                    "there", paths.CLAMAV_DB)
        while not signature_files():
            time.sleep(WAIT_S)
        log.info("signatures found: starting clamd")
    os.execv("/usr/sbin/clamd", ["clamd", "--foreground", f"--config-file={CLAMD_CONF}"])
    return 0  # not reached


def signatures() -> tuple[str, list[str]]:
    """One line for `appliance status` about the signatures, and the problems."""
    files = signature_files()
    if not files:
        return "none", [f"ClamAV has no virus signatures in {paths.CLAMAV_DB}: mail is "
                        "deferred until freshclam downloads them (see README, Viruses)"]
    names = ", ".join(p.name for p in files[:4]) + (" ..." if len(files) > 4 else "")
    newest = max(p.stat().st_mtime for p in files)
    try:
        engine = asyncio.run(version(paths.CLAMD_SOCKET))
    except ClamdError as e:
        return names, [f"clamd does not answer: {e}"]
    # "ClamAV 1.4.6/27463/Fri Nov 20 08:32:00 2026": the date of the daily signatures
    parts = engine.split("/")
    when = dt.datetime.fromtimestamp(newest, dt.UTC)
    if len(parts) == 3:
        try:
            when = dt.datetime.strptime(re.sub(r"\s+", " ", parts[2]),
                                        "%a %b %d %H:%M:%S %Y").replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    age = (dt.datetime.now(dt.UTC) - when).days
    line = f"{engine.split('/')[0]}, {names}, updated {when:%Y-%m-%d} ({age} days ago)"
    problems = [f"the virus signatures are {age} days old"] if age > STALE_DAYS else []
    return line, problems
