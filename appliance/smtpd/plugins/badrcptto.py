"""badrcptto: recipients the internet cannot reach (SME badrcptto, badrcptto_ext).

Two lists, as in SME: `patterns`, addresses refused outright (qmail spamcontrol
patterns, see appliance.smtpd.address), and the users marked `visible = "internal"`,
whose addresses in our domains (also with an extension, bob-lists@) are refused as if
they did not exist. Groups and pseudonyms are not affected. The peers table runs this
plugin for internet clients only; whitelisted and relay clients are exempt, as in
qpsmtpd. Settings: [smtpd.badrcptto] patterns, [users.*] visible.
"""

from __future__ import annotations

import re
from typing import Any

from appliance.smtpd import replies
from appliance.smtpd.address import AddressPatterns, mailbox_of, split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, deny

REFUSED = "550 5.7.1 Mail to <{address}> is not accepted"


class Plugin(BasePlugin):
    name = "badrcptto"

    def __init__(self, settings: dict[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        try:
            self.patterns = AddressPatterns(self.config.get("patterns", []))
        except re.error as e:
            raise PluginError(f"badrcptto: bad pattern: {e}") from None
        self.internal = frozenset(u.lower() for u in settings.get("internal_users", []))
        delegated = {d.lower() for d in settings.get("delegated_domains", {})}
        self.domains = frozenset(d.lower() for d in settings["local_domains"]) - delegated
        self.addresses = frozenset(a.lower() for a in settings.get("addresses", {}))
        goodrcptto = settings.get("plugin_settings", {}).get("check_goodrcptto", {})
        self.separator = goodrcptto.get("extension_separator", "-")

    def is_internal(self, recipient: str) -> bool:
        """An internal user's address (or an extension of it) in one of our domains."""
        local, domain = split_address(recipient)
        if not self.internal or domain not in self.domains:
            return False
        mailbox = mailbox_of(local, domain, self.addresses, self.separator)
        # the user it reaches is internal (groups and pseudonyms have their own names)
        return mailbox is not None and mailbox.rpartition("@")[0] in self.internal

    async def hook_rcpt(self, conn: Connection, txn: Transaction,
                        recipient: str) -> Result | None:
        if conn.trusted or txn.whitelisted:
            return None
        if self.patterns and self.patterns.matches(recipient):
            conn.karma -= 2
            self.log.info("refused %s: listed", recipient)
            return deny(REFUSED.format(address=recipient))
        if self.is_internal(recipient):
            conn.karma -= 2
            self.log.info("refused %s: internal user", recipient)
            return deny(replies.USER_UNKNOWN.format(address=recipient))
        return None
