"""The messages each logged-in user sent in the last hour: the send_limits plugin's
table (state directory, send_limits.sqlite), read by `appliance status` too."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    user TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_user ON sent (user, at);
"""
HOUR = 3600.0
FILE = "send_limits.sqlite"


def sent_last_hour(db: sqlite3.Connection, user: str, now: float) -> tuple[int, float]:
    """(messages USER sent in the hour before NOW, when the oldest of them was sent)."""
    count, oldest = db.execute("SELECT count(*), min(at) FROM sent WHERE user = ? AND at > ?",
                               (user, now - HOUR)).fetchone()
    return int(count), float(oldest or now)


def counts_last_hour(state_dir: Path, now: float) -> dict[str, int]:
    """{user: messages in the hour before NOW}, read-only; {} while nothing was sent.

    `appliance status` runs as root, the daemons as qpsmtpd: a reader must never leave
    root's files beside the database. With no -wal file (no daemon has it open, all is
    in the main file) it is read as immutable, creating nothing; with one, read-only,
    which uses the daemons' -wal and -shm, and should the last daemon close it meanwhile
    (SQLite then makes them anew), they are given back to the database's owner."""
    path = state_dir / FILE
    if not path.exists():
        return {}
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    db = sqlite3.connect(f"file:{path}?{mode}", uri=True, timeout=2)
    try:
        rows = db.execute("SELECT user, count(*) FROM sent WHERE at > ? GROUP BY user",
                          (now - HOUR,)).fetchall()
    except sqlite3.OperationalError:  # made, but no table yet
        return {}
    finally:
        db.close()
        _give_back(path)
    return {user: int(n) for user, n in rows}


def _give_back(path: Path) -> None:
    """The -wal and -shm beside PATH to PATH's owner (root's reader may have made them)."""
    try:
        owner = path.stat()
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists() and side.stat().st_uid != owner.st_uid:
                os.chown(side, owner.st_uid, owner.st_gid)
    except OSError:  # not root, or gone meanwhile: nothing of ours to give back
        pass
