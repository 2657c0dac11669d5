"""The messages each logged-in user sent in the last hour: the send_limits plugin's
table (state directory, send_limits.sqlite), read by `appliance status` too."""

from __future__ import annotations

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
    """{user: messages in the hour before NOW}, read-only; {} while nothing was sent."""
    path = state_dir / FILE
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    try:
        rows = db.execute("SELECT user, count(*) FROM sent WHERE at > ? GROUP BY user",
                          (now - HOUR,)).fetchall()
    except sqlite3.OperationalError:  # made, but no table yet
        return {}
    finally:
        db.close()
    return {user: int(n) for user, n in rows}
