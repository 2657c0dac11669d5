"""headers: basic RFC 5322 header checks (SME headers, MaximumDateOffset).

After DATA: every header in `required` must be present and not empty; the headers RFC
5322 allows only once (Date, From, Sender, Reply-To, To, Cc, Bcc, Message-ID,
In-Reply-To, References, Subject) must not come twice; and with
`maximum_date_offset` days set, the Date header must be a date no further than that
in the future or the past. Whitelisted clients and senders are exempt, as in qpsmtpd;
everyone else is checked, our own users too (their mail programs write these headers).
Settings: [smtpd.headers] required, maximum_date_offset.
"""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings

SINGULAR = ("Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID",
            "In-Reply-To", "References", "Subject")


class Plugin(BasePlugin):
    name = "headers"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.headers
        self.required = config.required
        offset = config.maximum_date_offset
        self.offset = timedelta(days=offset) if offset else None

    def _problem(self, txn: Transaction) -> str | None:
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(txn.header_bytes)
        for name in self.required:
            if not any(str(v).strip() for v in headers.get_all(name, [])):
                return replies.HEADER_MISSING.format(name=name)
        for name in SINGULAR:
            if len(headers.get_all(name, [])) > 1:
                return replies.HEADER_REPEATED.format(name=name)
        if self.offset is None:
            return None
        dates = headers.get_all("Date", [])
        if not dates:
            return None
        try:
            when = parsedate_to_datetime(" ".join(str(dates[0]).split()))
        except (TypeError, ValueError, IndexError, OverflowError):
            return replies.DATE_INVALID
        if when.tzinfo is None:  # "-0000": the time is UTC, the zone unknown
            when = when.replace(tzinfo=UTC)
        now = datetime.now(UTC)
        if when > now + self.offset:
            return replies.DATE_FUTURE
        if when < now - self.offset:
            return replies.DATE_PAST
        return None

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if conn.whitelisted or txn.whitelisted:
            return None
        problem = self._problem(txn)
        if problem is None:
            self.log.info("pass")
            return None
        conn.karma -= 1
        self.log.info("fail: %s", problem[10:])
        return deny(problem)
