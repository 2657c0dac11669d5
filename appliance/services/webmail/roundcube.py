"""Roundcube's state on the data volume, prepared by `appliance run` before supervisord.

The SQLite database (created from Debian's schema on first boot, migrated by Roundcube's
own updatedb.sh after an image upgrade) and the key that encrypts its sessions, both
owned by www-data, which php-fpm runs as.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import sqlite3
import subprocess
from pathlib import Path

from appliance.config import write_atomic
from appliance.services.webmail import DATABASE, DES_KEY

log = logging.getLogger("appliance.webmail")

SCHEMA = Path("/usr/share/roundcube/SQL/sqlite.initial.sql")
UPDATEDB = ["php", "/usr/share/roundcube/bin/updatedb.sh", "--package=roundcube",
            "--dir=/usr/share/roundcube/SQL"]
RUNTIME_DIRS = (Path("/run/php"), Path("/var/lib/roundcube/temp"))


def prepare() -> None:
    """Never stops the boot: without its database webmail fails, mail must not."""
    try:
        _prepare()
    except (OSError, sqlite3.Error, subprocess.SubprocessError) as e:
        log.error("webmail: cannot prepare its database, webmail will not work: %s", e)


def _prepare() -> None:
    www = pwd.getpwnam("www-data")
    for d in (DATABASE.parent, *RUNTIME_DIRS):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, www.pw_uid, www.pw_gid)
    os.chmod(DATABASE.parent, 0o750)  # SQLite writes its journal next to the database
    if not DES_KEY.exists():
        # 32 characters for AES-256-CBC; sessions in the database are encrypted with it
        write_atomic(DES_KEY, base64.b64encode(os.urandom(24)).decode() + "\n", mode=0o640)
        os.chown(DES_KEY, 0, www.pw_gid)
    if not DATABASE.exists() or DATABASE.stat().st_size == 0:
        with sqlite3.connect(DATABASE) as db:
            db.executescript(SCHEMA.read_text())
        db.close()
        log.info("first boot: created the webmail database %s", DATABASE)
    os.chown(DATABASE, www.pw_uid, www.pw_gid)
    os.chmod(DATABASE, 0o640)


def migrate_schema() -> None:
    """Roundcube's own updatedb.sh brings a database of an older Roundcube up to this
    one's schema (nothing to do when it is current). It reads the database's place from
    Roundcube's configuration, so it runs once apply has rendered that (before, it read
    the package's default path and failed). Never stops the boot."""
    if not DATABASE.exists():
        return
    try:
        proc = subprocess.run(["runuser", "-u", "www-data", "--", *UPDATEDB],
                              capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        log.error("webmail database migration failed: %s", e)
        return
    if proc.returncode != 0:
        log.error("webmail database migration failed: %s", (proc.stdout + proc.stderr).strip())
