"""A small SQLite file in the state directory, shared by the three SMTP daemons.

Used by karma and greylisting. The file is opened on first use, never at plugin load
(the config checker loads plugins as root in a staging run, where no state may be
created). WAL lets the daemons read while one writes; a short busy timeout makes a
locked database an error the plugin logs and passes over, never a stalled client.

Queries run in a worker thread (`asyncio.to_thread`): a commit can wait on another
daemon's lock or on the disk, and that must not hold up every other session on the
event loop. One connection per store, used by one thread at a time under a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from appliance.sqlite_transaction import transaction

T = TypeVar("T")

BUSY_TIMEOUT_MS = 500


class Store:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # one kind of failure for the plugins to handle
                raise sqlite3.OperationalError(f"cannot create {self.path.parent}: {e}") from e
            # autocommit mode: _run opens and ends each transaction itself
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                 isolation_level=None, check_same_thread=False)
            try:
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.executescript(self.schema)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        with self._lock:  # readers need no database lock at all under WAL
            return transaction(self._open(), fn, write)

    async def run(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run fn(db) in one transaction in a worker thread; sqlite3.Error on failure."""
        return await asyncio.to_thread(self._run, fn, write)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
