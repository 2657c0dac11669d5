"""check_goodrcptto: refuses recipients in our own domains that have no mailbox (5.1.1).

Other domains are left to rcpt_ok, which decides about relaying.
"""

from __future__ import annotations

from typing import Any

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin
from appliance.smtpd.results import DECLINED, Result, deny


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local.lower(), domain.lower().rstrip(".")


class Plugin(BasePlugin):
    name = "check_goodrcptto"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.domains = frozenset(d.lower() for d in settings["local_domains"])
        self.users = frozenset(u.lower() for u in settings["users"])

    async def hook_rcpt(self, conn: Connection, txn: Transaction, recipient: str) -> Result:
        local, domain = split_address(recipient)
        if domain in self.domains and local not in self.users:
            return deny(replies.USER_UNKNOWN.format(address=recipient))
        return DECLINED
