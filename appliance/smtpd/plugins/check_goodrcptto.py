"""check_goodrcptto: in our domains, only addresses that exist (SME check_goodrcptto).

Existing means a user, a group or a pseudonym at a domain delivered here, optionally with
an extension (alice+lists@ and alice-lists@ reach alice with the default separators
"+-", as Postfix's and Dovecot's recipient_delimiter, rendered from the same key). Domains
delegated to another server (SME MailServer) are accepted whole; check_smtp_forward asks
that server. Other domains are left to rcpt_ok, which decides about relaying.
"""

from __future__ import annotations

from appliance.smtpd import replies
from appliance.smtpd.address import mailbox_of, split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import DECLINED, Result, deny
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "check_goodrcptto"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        delegated = {d.lower() for d in settings.delegated_domains}
        self.domains = frozenset(d.lower() for d in settings.local_domains) - delegated
        self.addresses = frozenset(a.lower() for a in settings.addresses)
        # characters, "+-"
        self.separator = settings.plugin_settings.check_goodrcptto.extension_separator

    def exists(self, local: str, domain: str) -> bool:
        # "@domain" is the catch-all of delivery.unknown_user (SME EmailUnknownUser)
        return (mailbox_of(local, domain, self.addresses, self.separator) is not None
                or f"@{domain}" in self.addresses)

    async def hook_rcpt(self, conn: Connection, txn: Transaction, recipient: str) -> Result:
        local, domain = split_address(recipient)
        if domain in self.domains and not self.exists(local, domain):
            return deny(replies.USER_UNKNOWN.format(address=recipient))
        return DECLINED
