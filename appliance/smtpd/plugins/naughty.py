"""naughty: delivers the refusal that an earlier plugin deferred (SME naughty, reject mail).

Plugins set to `reject naughty` (dnsbl, helo, earlytalker, karma...) only mark the
connection (`conn.naughty = (reply, plugin)`); we refuse it at `reject_at` (mail, rcpt
or data), so the log shows the sender and recipients, and our own users get the chance
to authenticate first (the handler clears the mark on AUTH). The reply is the marking
plugin's, with its class: a 4xx mark is deferred, a 5xx one refused.

A mark set after `reject_at` has passed (say, at data_post) is refused at the next stage
that comes, data_post and queue included, so no marked message is ever queued.
Whitelisted senders (`txn.whitelisted`) and trusted clients are let through.
"""

from __future__ import annotations

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny, denysoft
from appliance.smtpd.settings import Settings

STAGES = ("mail", "rcpt", "data", "data_post", "queue")
CONFIGURABLE = STAGES[:3]


class Plugin(BasePlugin):
    name = "naughty"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.first = STAGES.index(settings.plugin_settings.naughty.reject_at)

    def _check(self, stage: str, conn: Connection, txn: Transaction) -> Result | None:
        if conn.naughty is None or STAGES.index(stage) < self.first:
            return None
        reply, plugin = conn.naughty
        if conn.trusted or txn.whitelisted:
            return None
        self.log.info("naughty: refusing %s marked by %s", conn.remote_ip, plugin)
        reply = reply or replies.NAUGHTY
        return denysoft(reply) if reply.startswith("4") else deny(reply)

    async def hook_mail(self, conn: Connection, txn: Transaction, sender: str) -> Result | None:
        return self._check("mail", conn, txn)

    async def hook_rcpt(self, conn: Connection, txn: Transaction, recipient: str
                        ) -> Result | None:
        return self._check("rcpt", conn, txn)

    async def hook_data(self, conn: Connection, txn: Transaction) -> Result | None:
        return self._check("data", conn, txn)

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        return self._check("data_post", conn, txn)

    async def hook_queue(self, conn: Connection, txn: Transaction) -> Result | None:
        return self._check("queue", conn, txn)
