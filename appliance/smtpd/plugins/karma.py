"""karma: remembers how each client behaved and puts bad ones in the penalty box
(SME Karma, KarmaNegative, KarmaStrikes; qpsmtpd karma).

During a connection the other plugins raise or lower `conn.karma`; a delivered message
is worth one more point (queue hook). When the connection ends it counts as bad at
`-strikes` or below, good at `+strikes` or above, neutral otherwise, and the client's
counts are updated. A client with `negative` more bad than good connections whose last
bad one is less than `penalty_days` old is marked naughty at connect: the naughty plugin
refuses it later, after it had the chance to authenticate (our own roaming users are
never locked out by the IP they share with a spammer).

Trusted connections (whitelisted, relay clients, authenticated) are never recorded. A
client is its IPv4 address or its IPv6 /64.
The store is SQLite in the state directory, shared by the three daemons. A database
problem is logged and the mail goes on: karma must never be why mail is refused.
"""

from __future__ import annotations

import sqlite3
import time

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.peers import host_key
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins._sqlite import Store
from appliance.smtpd.results import Result, naughty
from appliance.smtpd.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS karma (
    ip TEXT PRIMARY KEY,
    total INTEGER NOT NULL DEFAULT 0,
    good INTEGER NOT NULL DEFAULT 0,
    bad INTEGER NOT NULL DEFAULT 0,
    last_bad REAL NOT NULL DEFAULT 0,
    last_seen REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS karma_last_seen ON karma (last_seen);
"""
DAY = 86400.0
HISTORY_DAYS = 90  # hosts not seen for this long are forgotten (the table stays small)
PRUNE_EVERY = 3600.0
HISTORY_NOTE = "karma_history"  # good minus bad connections, for other plugins


class Plugin(BasePlugin):
    name = "karma"
    clock = staticmethod(time.time)  # tests replace it

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.karma
        self.negative = config.negative
        self.strikes = config.strikes
        self.penalty = config.penalty_days * DAY
        self.store = Store(ctx.state_dir / "karma.sqlite", SCHEMA)
        self._pruned = 0.0

    @staticmethod
    def key(ip: str) -> str:
        """The client host in one spelling: its IPv4 address (IPv4-mapped IPv6 as IPv4)
        or its IPv6 /64, so a host cannot leave the penalty box by taking a new address
        of its network."""
        return host_key(ip)

    async def hook_connect(self, conn: Connection) -> Result | None:
        if conn.trusted:
            return None
        ip = self.key(conn.remote_ip)
        try:
            row = await self.store.run(
                lambda db: db.execute("SELECT good, bad, last_bad FROM karma WHERE ip = ?",
                                      (ip,)).fetchone(), write=False)
        except sqlite3.Error as e:
            self.log.warning("%s: karma database unavailable, skipped: %s", ip, e)
            return None
        if row is None:
            return None
        good, bad, last_bad = row
        conn.notes[HISTORY_NOTE] = good - bad
        left = last_bad + self.penalty - self.clock()
        if bad - good >= self.negative and left > 0:
            hours = max(1, round(left / 3600))
            self.log.info("%s: penalty box (%d bad, %d good), %d h left", ip, bad, good, hours)
            return naughty(replies.PENALTY_BOX.format(ip=ip, hours=hours))
        return None

    async def hook_queue(self, conn: Connection, txn: Transaction) -> None:
        if conn.naughty is None:  # a marked message is about to be refused by naughty
            conn.karma += 1  # a message made it through every check

    async def hook_disconnect(self, conn: Connection) -> None:
        if conn.trusted:
            return
        ip, now = self.key(conn.remote_ip), self.clock()
        # A connection another plugin marked naughty was refused for it: bad, whatever
        # its points (marking plugins charge only one point, below the default strikes).
        bad = int(conn.karma <= -self.strikes or conn.naughty is not None)
        good = int(not bad and conn.karma >= self.strikes)
        prune = now - self._pruned > PRUNE_EVERY
        if prune:
            self._pruned = now

        def record(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO karma (ip, total, good, bad, last_bad, last_seen) "
                "VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (ip) DO UPDATE SET "
                "total = total + 1, good = good + excluded.good, bad = bad + excluded.bad, "
                "last_bad = max(last_bad, excluded.last_bad), last_seen = excluded.last_seen",
                (ip, good, bad, now if bad else 0.0, now))
            if prune:
                db.execute("DELETE FROM karma WHERE last_seen < ?",
                           (now - HISTORY_DAYS * DAY,))

        try:
            await self.store.run(record)
        except sqlite3.Error as e:
            self.log.warning("%s: karma not recorded: %s", ip, e)
            return
        if good or bad:
            self.log.info("%s: %s connection (karma %d)", ip, "good" if good else "bad",
                          conn.karma)

    def close(self) -> None:
        self.store.close()
