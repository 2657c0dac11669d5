"""badrcptto: recipients the internet cannot reach (SME badrcptto, badrcptto_ext).

Two lists, as in SME: `patterns`, addresses refused outright (qmail spamcontrol
patterns, see appliance.smtpd.address), and the internal addresses (SME Visible
internal; appliance.accounts.internal_addresses), also with an extension (bob-lists@):
an internal user's addresses are refused as if they did not exist (550 5.1.1), internal
lists (groups, which are internal by default, everyone@ unless
delivery.everyone_visible = "public", pseudonyms of internal groups) with 550 5.7.1, so
that one RCPT from the internet cannot reach every mailbox. The peers table runs this
plugin for internet clients only: local networks and our logged-in users may write to
every address; whitelisted and relay clients are exempt too, as in qpsmtpd. Settings:
[smtpd.badrcptto] patterns, visible of [users.*], [groups.*] and [pseudonyms.*],
delivery.everyone_visible.
"""

from __future__ import annotations

import re

from appliance.smtpd import replies
from appliance.smtpd.address import AddressPatterns, mailbox_of, split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "badrcptto"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        try:
            self.patterns = AddressPatterns(settings.plugin_settings.badrcptto.patterns)
        except re.error as e:
            raise PluginError(f"badrcptto: bad pattern: {e}") from None
        self.internal: dict[str, str] = {
            a.lower(): kind for a, kind in settings.internal_addresses.items()}
        delegated = {d.lower() for d in settings.delegated_domains}
        self.domains = frozenset(d.lower() for d in settings.local_domains) - delegated
        self.addresses = frozenset(a.lower() for a in settings.addresses)
        self.separator = settings.plugin_settings.check_goodrcptto.extension_separator

    def internal_kind(self, recipient: str) -> str | None:
        """"user" or "list" for an internal address (or an extension of one) in one of
        our domains, None for every other recipient."""
        local, domain = split_address(recipient)
        if not self.internal or domain not in self.domains:
            return None
        mailbox = mailbox_of(local, domain, self.addresses, self.separator)
        return self.internal.get(mailbox or f"@{domain}")

    async def hook_rcpt(self, conn: Connection, txn: Transaction,
                        recipient: str) -> Result | None:
        if conn.authenticated or conn.relay_client:
            return None
        if self.patterns and self.patterns.matches(recipient) and not (
                conn.whitelisted or txn.whitelisted):
            conn.karma -= 2
            self.log.info("refused %s: listed", recipient)
            return deny(replies.RECIPIENT_BLOCKED.format(address=recipient))
        # Internal addresses stay internal for whitelisted hosts and senders too: a
        # sender whitelist entry is only a claim in MAIL FROM, a spam exemption.
        kind = self.internal_kind(recipient)
        if kind is not None:
            conn.karma -= 2
            self.log.info("refused %s: internal %s", recipient, kind)
            reply = replies.USER_UNKNOWN if kind == "user" else replies.INTERNAL_ONLY
            return deny(reply.format(address=recipient))
        return None
