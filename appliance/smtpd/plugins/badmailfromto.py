"""badmailfromto: a listed sender cannot reach a listed recipient (SME badmailfromto).

Each pair is "sender recipient"; both sides take qmail spamcontrol patterns (see
appliance.smtpd.address). The recipient is refused exactly as if it did not exist, so
the sender (a harasser, say) cannot tell that they are blocked. The null sender never
matches. Setting: [smtpd.badmailfromto] pairs.
"""

from __future__ import annotations

import re

from appliance.smtpd import replies
from appliance.smtpd.address import AddressPatterns
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "badmailfromto"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.pairs: list[tuple[AddressPatterns, AddressPatterns]] = []
        for pair in settings.plugin_settings.badmailfromto.pairs:
            parts = pair.split()  # the schema made sure of two
            try:
                self.pairs.append((AddressPatterns([parts[0]]), AddressPatterns([parts[1]])))
            except re.error as e:
                raise PluginError(f"badmailfromto: bad pattern in {pair!r}: {e}") from None

    async def hook_rcpt(self, conn: Connection, txn: Transaction,
                        recipient: str) -> Result | None:
        if not txn.sender:
            return None
        for senders, recipients in self.pairs:
            if senders.matches(txn.sender) and recipients.matches(recipient):
                self.log.info("refused %s from %s: listed pair", recipient, txn.sender)
                return deny(replies.USER_UNKNOWN.format(address=recipient))
        return None
