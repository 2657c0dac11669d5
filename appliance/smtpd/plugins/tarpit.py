"""tarpit: after `smtpd.tarpit_count` refused recipients in one session, each further
RCPT waits `smtpd.tarpit_delay` seconds before its answer (H-Sphere qmail tarpitcount
and tarpitdelay).

A dictionary attack (alice@, bob@, carol@... until one exists) then crawls, while a
real sender with a typo or two never notices. Runs for internet clients only: local
networks and our logged-in users are not slowed.
"""

from __future__ import annotations

import asyncio

from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "tarpit"
    sleep = staticmethod(asyncio.sleep)  # tests replace it

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.count = settings.tarpit_count
        self.delay = settings.tarpit_delay

    async def hook_rcpt(self, conn: Connection, txn: Transaction,
                        recipient: str) -> Result | None:
        if not self.count or conn.refused_recipients < self.count:
            return None
        if conn.refused_recipients == self.count:  # once per session
            self.log.info("%s: %d refused recipients, each further RCPT waits %ds",
                          conn.remote_ip, conn.refused_recipients, self.delay)
        await self.sleep(self.delay)
        return None
