"""send_limits: how much one logged-in user may send (limits.*, users.NAME overrides).

A stolen password must not become a flood. Each message a user sends is counted, on
the three daemons together (a small SQLite file in the state directory); at MAIL, a
user who sent `messages_per_hour` messages in the last hour gets 451 4.7.1 with the
limit named, until the oldest of them is an hour old. Mail accepted before the limit
goes out as usual. (The recipients of one message are capped by the daemon itself at
RCPT: recipients_per_message, 452 4.5.3.)

A message is counted when it is handed to the queue, each try of it. The store failing
lets the mail through (logged): a limit is a brake for a compromised account, not a
gate our users must pass.
"""

from __future__ import annotations

import sqlite3
import time

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins._sqlite import Store
from appliance.smtpd.results import Result, denysoft
from appliance.smtpd.send_counts import FILE, HOUR, SCHEMA, sent_last_hour
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "send_limits"
    clock = staticmethod(time.time)  # tests replace it

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.limits = settings.user_limits
        self.store = Store(ctx.state_dir / FILE, SCHEMA)

    def per_hour(self, user: str) -> int:
        limits = self.limits.get(user)
        return limits.messages_per_hour if limits else 0

    async def hook_mail(self, conn: Connection, txn: Transaction,
                        sender: str) -> Result | None:
        user, now = conn.auth_user, self.clock()
        limit = self.per_hour(user) if user else 0
        if not limit:
            return None
        try:
            count, oldest = await self.store.run(
                lambda db: sent_last_hour(db, user, now), write=False)
        except sqlite3.Error as e:
            self.log.warning("%s: send limit not checked: %s", user, e)
            return None
        if count < limit:
            return None
        minutes = max(1, round((oldest + HOUR - now) / 60))
        self.log.warning("%s %s: send limit reached, %d messages in the last hour "
                         "(limit %d), MAIL refused", user, conn.remote_ip, count, limit)
        return denysoft(replies.SEND_LIMIT.format(user=user, limit=limit, minutes=minutes))

    async def hook_queue(self, conn: Connection, txn: Transaction) -> None:
        user, now = conn.auth_user, self.clock()
        if not user or not self.per_hour(user):
            return

        def record(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO sent (user, at) VALUES (?, ?)", (user, now))
            db.execute("DELETE FROM sent WHERE at <= ?", (now - HOUR,))

        try:
            await self.store.run(record)
        except sqlite3.Error as e:
            self.log.warning("%s: message not counted toward the send limit: %s", user, e)

    def close(self) -> None:
        self.store.close()
