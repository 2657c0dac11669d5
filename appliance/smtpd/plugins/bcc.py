"""bcc: copies mail to an archive mailbox (SME Bcc, BccMode, BccUser).

After DATA the archive address is added to the envelope (`txn.bcc`; the handler hands
it to Postfix with the other recipients). `direction` picks the mail copied: incoming
(to one of our domains), outgoing (from one of our domains, sent by an authenticated
user or a relay client) or all. Mode cc also marks the copy with an X-Copied-To header;
bcc is silent. A message already addressed to the archive is not copied again.
Settings: [smtpd.bcc] enabled, mode, user (a local user name or a full address),
direction.
"""

from __future__ import annotations

from appliance.config.plugin_rules import archive_address
from appliance.smtpd.address import split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.settings import Settings

HEADER = "X-Copied-To"


class Plugin(BasePlugin):
    name = "bcc"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.bcc
        self.mode = config.mode
        self.direction = config.direction
        # an address, or a user name at the primary domain; that it exists here when
        # the domain is ours was checked (appliance.config.plugin_rules)
        self.address = archive_address(config.user, settings.primary_domain)
        self.domains = frozenset(d.lower() for d in settings.local_domains)

    def _applies(self, conn: Connection, txn: Transaction) -> bool:
        if self.direction == "all":
            return True
        if self.direction == "incoming":
            return any(split_address(r)[1] in self.domains for r in txn.recipients)
        return (bool(txn.sender) and split_address(txn.sender)[1] in self.domains
                and (conn.authenticated or conn.relay_client))

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> None:
        if not self._applies(conn, txn):
            return
        target = self.address.lower()
        if any(r.lower() == target for r in txn.recipients + txn.bcc):
            self.log.info("not copied: %s is already a recipient", self.address)
            return
        txn.bcc.append(self.address)
        if self.mode == "cc":
            txn.prepend_header(HEADER, self.address)
        self.log.info("copied to %s (%s)", self.address, self.mode)
