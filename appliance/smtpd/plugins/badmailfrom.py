"""badmailfrom: refuses listed envelope senders (SME badmailfrom).

Patterns are qmail spamcontrol patterns (`user@host`, `@host`, wildcards, `!` to
exempt; see appliance.smtpd.address). As in qpsmtpd, the sender is noted at MAIL and
each recipient is refused at RCPT, so the log shows whom the mail was for. The null
sender never matches. Applies to every client, our own users too (SME runs it for all
peers). Setting: [smtpd.badmailfrom] patterns.
"""

from __future__ import annotations

import re

from appliance.smtpd import replies
from appliance.smtpd.address import AddressPatterns
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings

NOTE = "badmailfrom"


class Plugin(BasePlugin):
    name = "badmailfrom"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        try:
            self.patterns = AddressPatterns(settings.plugin_settings.badmailfrom.patterns)
        except re.error as e:
            raise PluginError(f"badmailfrom: bad pattern: {e}") from None

    async def hook_mail(self, conn: Connection, txn: Transaction, sender: str) -> None:
        if sender and self.patterns and self.patterns.matches(sender):
            txn.notes[NOTE] = sender
            conn.karma -= 1
            self.log.info("sender %s is listed; refusing its recipients", sender)

    async def hook_rcpt(self, conn: Connection, txn: Transaction,
                        recipient: str) -> Result | None:
        sender = txn.notes.get(NOTE)
        if sender is None:
            return None
        self.log.info("refused %s: sender %s is listed", recipient, sender)
        return deny(replies.SENDER_BLOCKED.format(sender=sender))
