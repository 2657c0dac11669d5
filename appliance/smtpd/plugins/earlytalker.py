"""earlytalker: refuses clients that talk before it is their turn (SME earlytalker).

A real mail server waits for the greeting (and, after DATA, for the 354) before it
sends. Spam engines often blast the whole dialogue at once without listening. We hold
the greeting for `wait` seconds (check_at = connect) or the 354 (check_at = data) and
look whether the client has already sent something. `wait = 0` only looks.

Like Postfix's postscreen (postscreen_greet_ttl), a client that waited politely is
remembered for `remember` seconds and greeted at once next time: the pause costs a real
mail server one second a day, not one per message. A talker is never remembered.

`reject`: deny refuses at once (554), naughty lets the naughty plugin refuse later,
off only logs. Whitelisted clients are not checked. At connect the relay plugin has not
run yet (it comes later in SME's order), so only the whitelists plugin's verdict counts
there; at DATA every exemption is known.
"""

from __future__ import annotations

import asyncio
import time

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, refuse
from appliance.smtpd.settings import Settings

REJECT_MODES = ("deny", "naughty", "off")  # as results.refuse reads them


class Plugin(BasePlugin):
    name = "earlytalker"
    sleep = staticmethod(asyncio.sleep)  # tests replace it

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.earlytalker
        self.wait: float = config.wait
        self.check_at = config.check_at
        self.remember = config.remember
        self.passed: dict[str, float] = {}  # client address -> until when it is trusted
        self.reject = config.reject

    def _remembered(self, ip: str) -> bool:
        until = self.passed.get(ip)
        if until is None:
            return False
        if until < time.monotonic():
            del self.passed[ip]
            return False
        return True

    async def _listen(self, conn: Connection, reply: str, when: str) -> Result | None:
        if self.remember and self._remembered(conn.remote_ip):
            return None
        if self.wait:
            await self.sleep(self.wait)
        if not conn.input_pending():
            if self.remember and self.wait:
                if len(self.passed) > 100_000:  # bound the memory; forget the oldest
                    for ip in list(self.passed)[:10_000]:
                        del self.passed[ip]
                self.passed[conn.remote_ip] = time.monotonic() + self.remember
            return None
        self.log.info("%s: talked before %s (%s)", conn.remote_ip, when, self.reject)
        if self.reject != "naughty":  # the pipeline charges the naughty mark itself
            conn.karma -= 1
        return refuse(self.reject, reply)

    async def hook_connect(self, conn: Connection) -> Result | None:
        if self.check_at != "connect" or conn.whitelisted:
            return None
        return await self._listen(conn, replies.EARLY_TALKER, "the greeting")

    async def hook_data(self, conn: Connection, txn: Transaction) -> Result | None:
        if self.check_at != "data" or conn.trusted or txn.whitelisted:
            return None
        return await self._listen(conn, replies.EARLY_DATA, "the 354")
