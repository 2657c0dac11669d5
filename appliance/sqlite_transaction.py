"""One SQLite transaction around a function: the pattern every small store here uses
(the ban store, the SMTP daemons' karma and greylisting), with connections opened in
autocommit mode (isolation_level=None) so that this is the only place transactions
begin and end."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T],
                write: bool) -> T:
    """fn(db) in one transaction, committed, or rolled back on any exception.

    A writer takes the write lock up front (IMMEDIATE): a read-then-write transaction
    that upgrades later could fail with "database is locked" without waiting."""
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result
