"""greylisting: the first try from an unknown (client network, sender, recipient) is
deferred (qpsmtpd greylisting; SME ships it off).

Real mail servers retry a 4xx; much spamware does not. For each triplet:

- never seen, or its last pass/grey window is over: defer (451) and remember it;
- seen less than `black_timeout` seconds ago: still too early, defer again (the clock
  is not restarted, or an impatient sender would never get through);
- retried after `black_timeout` and within `grey_timeout`: pass, and the triplet is
  welcome without delay for `white_timeout` seconds, renewed with every message.

The client is taken as its /24 (IPv4) or /64 (IPv6): big senders retry from another
machine of the same pool. Trusted clients and whitelisted senders are not greylisted.

At RCPT the first verdict that is not DECLINED wins, so this plugin only ever defers or
passes (DECLINED) and leaves accepting to rcpt_ok; it works at any place in the chain.
A database problem lets the mail through: greylisting is a filter, not a gate.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import time

from appliance.smtpd import replies
from appliance.smtpd.address import split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.peers import ip_address
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins._sqlite import Store
from appliance.smtpd.results import Result, denysoft
from appliance.smtpd.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS greylist (
    triplet TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    passed_at REAL,
    passes INTEGER NOT NULL DEFAULT 0
);
"""
PRUNE_EVERY = 3600.0

DEFER, PASS = "defer", "pass"


def client_network(ip: str) -> str:
    addr = ip_address(ip)
    if addr is None:
        return ip
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


class Plugin(BasePlugin):
    name = "greylisting"
    clock = staticmethod(time.time)  # tests replace it

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.greylisting
        self.black_timeout = config.black_timeout
        self.grey_timeout = config.grey_timeout
        self.white_timeout = config.white_timeout
        self.store = Store(ctx.state_dir / "greylist.sqlite", SCHEMA)
        self._pruned = 0.0
        # Only mail we would take: a relay attempt must meet rcpt_ok's 5.7.1, not a 451
        # that invites a retry (and a database row per probe).
        self.domains = frozenset(d.lower() for d in settings.local_domains)

    def _decide(self, db: sqlite3.Connection, triplet: str, now: float, prune: bool) -> str:
        if prune:  # forget triplets whose windows have closed
            db.execute("DELETE FROM greylist WHERE (passed_at IS NULL AND first_seen < ?) "
                       "OR passed_at < ?", (now - self.grey_timeout, now - self.white_timeout))
        row = db.execute("SELECT first_seen, passed_at FROM greylist WHERE triplet = ?",
                         (triplet,)).fetchone()
        if row is not None:
            first_seen, passed_at = row
            if passed_at is not None and now - passed_at < self.white_timeout:
                db.execute("UPDATE greylist SET passed_at = ?, passes = passes + 1 "
                           "WHERE triplet = ?", (now, triplet))
                return PASS
            if passed_at is None:
                age = now - first_seen
                if age < self.black_timeout:
                    return DEFER  # too early: the clock keeps running from the first try
                if age < self.grey_timeout:
                    db.execute("UPDATE greylist SET passed_at = ?, passes = 1 "
                               "WHERE triplet = ?", (now, triplet))
                    return PASS
        # new, or its window has closed: start over
        db.execute("INSERT OR REPLACE INTO greylist (triplet, first_seen, passed_at, passes) "
                   "VALUES (?, ?, NULL, 0)", (triplet, now))
        return DEFER

    async def hook_rcpt(self, conn: Connection, txn: Transaction, recipient: str
                        ) -> Result | None:
        if conn.trusted or txn.whitelisted or split_address(recipient)[1] not in self.domains:
            return None
        triplet = "\t".join((client_network(conn.remote_ip), txn.sender.lower(),
                             recipient.lower()))
        now = self.clock()
        prune = now - self._pruned > PRUNE_EVERY
        if prune:
            self._pruned = now
        try:
            verdict = await self.store.run(lambda db: self._decide(db, triplet, now, prune))
        except sqlite3.Error as e:
            self.log.warning("%s: greylisting skipped, database unavailable: %s",
                             conn.remote_ip, e)
            return None
        if verdict == DEFER:
            self.log.info("%s: greylisted <%s> -> <%s>", conn.remote_ip, txn.sender,
                          recipient)
            return denysoft(replies.GREYLISTED)
        return None

    def close(self) -> None:
        self.store.close()
