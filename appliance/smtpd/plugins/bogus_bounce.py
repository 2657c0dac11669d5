"""bogus_bounce: refuses null-sender mail that cannot be a real bounce (SME bogus_bounce).

A delivery report (MAIL FROM:<>) goes back to exactly one address, the original
sender, and carries no Return-Path other than an empty one (RFC 3834). A "bounce" to
several recipients, or with a Return-Path naming someone, is spam using the null sender
to dodge sender checks. Checked after DATA, when all recipients are known. Our own
authenticated users are left alone. Setting: [smtpd.bogus_bounce] enabled.
"""

from __future__ import annotations

import email.policy
from email.parser import BytesHeaderParser

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin
from appliance.smtpd.results import Result, deny


class Plugin(BasePlugin):
    name = "bogus_bounce"

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if txn.sender or conn.authenticated:
            return None
        if len(txn.recipients) != 1:
            self.log.info("bogus bounce: %d recipients", len(txn.recipients))
            return deny(replies.BOUNCE_ONE_RECIPIENT)
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(txn.header_bytes)
        for value in headers.get_all("Return-Path", []):
            path = str(value).strip()
            if path not in ("", "<>"):
                self.log.info("bogus bounce: Return-Path %s", path[:100])
                return deny(replies.BOUNCE_RETURN_PATH)
        self.log.info("bounce passes: one recipient, empty Return-Path")
        return None
