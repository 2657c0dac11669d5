"""rcpt_ok: the last word at RCPT; accepts what the checks before it let through.

Recipients in our domains are accepted (check_goodrcptto has already refused the ones
that do not exist); other domains only for relay clients and authenticated users.
Everyone else gets 5.7.1: the appliance is never an open relay.
"""

from __future__ import annotations

from appliance.smtpd import replies
from appliance.smtpd.address import split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny, ok
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "rcpt_ok"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.domains = frozenset(d.lower() for d in settings.local_domains)

    async def hook_rcpt(self, conn: Connection, txn: Transaction, recipient: str) -> Result:
        local, domain = split_address(recipient)
        if not local or not domain:
            return deny(replies.BAD_ADDRESS.format(address=recipient))
        if domain in self.domains or conn.authenticated or conn.relay_client:
            return ok()
        return deny(replies.RELAY_DENIED)
