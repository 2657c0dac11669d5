"""pattern_filter: refuses attachments by file name (SME PatternsScan, virus/pattern_filter).

After DATA every MIME part with a file name (Content-Disposition filename or
Content-Type name, RFC 2231 and encoded words decoded) is matched, case-insensitively,
against `patterns` (`*` and `?`). Windows ignores trailing dots and spaces, so
"invoice.exe. " counts as "invoice.exe". Parts of attached messages are checked too;
archives are not opened (the default list allows zip, as SME). A match refuses the
message with 550 naming the file. Runs for every client, as SME.
"""

from __future__ import annotations

import asyncio
import email.utils
import fnmatch
import re
from email.message import EmailMessage

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins.clamav import printable
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings

# Only a message with a named part can match: skip the MIME parse for the rest.
# (RFC 2231 continuations too: filename*0="evil.e"; filename*1="xe")
MAYBE_NAMED = re.compile(rb"(?i)\b(?:file)?name(?:\*\d+)?\*?\s*=")


def compile_patterns(patterns: list[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p.strip().lower()) for p in patterns if p.strip()]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def _names(part: EmailMessage) -> list[str]:
    """Every file name a part gives: each Content-Disposition filename and the
    Content-Type name (a client may show any of them)."""
    names = []
    for header in ("content-disposition", "content-type"):
        for param in ("filename", "name"):
            try:
                for value in part.get_all(header) or []:
                    probe = EmailMessage()
                    probe[header] = value
                    if found := probe.get_param(param, header=header):
                        names.append(str(email.utils.collapse_rfc2231_value(found)))
            except (ValueError, TypeError, LookupError):  # broken RFC 2231 parameters
                continue
    return names


def blocked_name(msg: EmailMessage, pattern: re.Pattern[str]) -> str | None:
    for part in msg.walk():
        for name in _names(part):
            base = re.split(r"[\\/]", name)[-1].strip().rstrip(". ").lower()
            if pattern.fullmatch(base):
                return name
    return None


class Plugin(BasePlugin):
    name = "pattern_filter"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.pattern = compile_patterns(list(settings.plugin_settings.pattern_filter.patterns))

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if self.pattern is None or not MAYBE_NAMED.search(txn.data):
            return None
        name = await asyncio.to_thread(blocked_name, await txn.parsed(), self.pattern)
        if name is None:
            return None
        self.log.info("refused attachment %r", name)
        return deny(replies.ATTACHMENT_BLOCKED.format(name=printable(name)))
