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
from typing import Any

from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, refuse

REJECT_MODES = ("deny", "naughty", "off")  # as results.refuse reads them
REPLY = "554 5.7.1 Talking before the greeting is not allowed"
DATA_REPLY = "554 5.7.1 Sending the message before the 354 reply is not allowed"


class Plugin(BasePlugin):
    name = "earlytalker"
    sleep = staticmethod(asyncio.sleep)  # tests replace it

    def __init__(self, settings: dict[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.wait = self.config.get("wait", 1)
        if type(self.wait) not in (int, float) or not 0 <= self.wait <= 30:
            raise PluginError("earlytalker: wait must be 0 to 30 seconds")
        self.check_at = self.config.get("check_at", "connect")
        if self.check_at not in ("connect", "data"):
            raise PluginError("earlytalker: check_at must be connect or data")
        self.remember = self.config.get("remember", 86400)
        self.passed: dict[str, float] = {}  # client address -> until when it is trusted
        self.reject = self.config.get("reject", "naughty")
        if self.reject not in REJECT_MODES:
            raise PluginError(f"earlytalker: reject must be one of {', '.join(REJECT_MODES)}")

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
        return await self._listen(conn, REPLY, "the greeting")

    async def hook_data(self, conn: Connection, txn: Transaction) -> Result | None:
        if self.check_at != "data" or conn.trusted or txn.whitelisted:
            return None
        return await self._listen(conn, DATA_REPLY, "the 354")
