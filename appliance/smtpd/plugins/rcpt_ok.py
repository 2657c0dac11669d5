"""rcpt_ok: accepts recipients in our domains; other domains only for relay clients.

Relay clients are authenticated users and clients from the local networks (see the
relay plugin). Everyone else gets 5.7.1 at RCPT: the appliance is never an open relay.
"""

from __future__ import annotations

from typing import Any

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin
from appliance.smtpd.plugins.check_goodrcptto import split_address
from appliance.smtpd.results import Result, deny, ok


class Plugin(BasePlugin):
    name = "rcpt_ok"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.domains = frozenset(d.lower() for d in settings["local_domains"])

    async def hook_rcpt(self, conn: Connection, txn: Transaction, recipient: str) -> Result:
        _, domain = split_address(recipient)
        if domain in self.domains or conn.authenticated or conn.relay_client:
            return ok()
        return deny(replies.RELAY_DENIED)
