"""spamassassin: scores mail with spamd (SME spamassassin, forcespamcheck).

After DATA the message goes to spamd (SYMBOLS, over its Unix socket) as it will be
queued, with our Received line for this hop on top (appliance.smtpd.received), so
SpamAssassin judges the client against its trusted_networks; it comes back as a score
and the rules that hit. The message gets SpamAssassin's headers:

    X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE,...
    X-Spam-Score: 1000.0
    X-Spam-Level: ************************** (one star per point, at most 50)
    X-Spam-Flag: YES                            (only at or above the tag level)

At or above the tag level the Subject gets the subject tag (subject_tag), and Dovecot's
junkmail script files the message for users who sort spam. At or above the rejection
level (sensitivity custom only, as SME) the message is refused with 550.

Not scanned: mail from our users and relay clients unless scan_local (SME scans only
internet mail; forcespamcheck), whitelisted hosts and senders, and messages larger than
max_message_size (with an X-Spam-Status saying so). spamd unreachable or failing: 451,
unless on_error = "accept". X-Spam-* headers already in a message are always removed:
Dovecot's junkmail rule trusts X-Spam-Flag, so only our own may be there.
"""

from __future__ import annotations

from email.header import Header
from pathlib import Path

from appliance.services.spamassassin.client import SpamdError, symbols
from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mime import edit_header_fields
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny, denysoft
from appliance.smtpd.settings import Settings

SPAM_HEADERS = (b"x-spam-status", b"x-spam-score", b"x-spam-level", b"x-spam-flag")
MAX_STARS = 50


def drop_spam_headers(data: bytes) -> bytes:
    return edit_header_fields(data, lambda name, field: None if name in SPAM_HEADERS
                              else field)


def fold_tests(tests: list[str], first: int) -> str:
    """'A,B,C' broken after commas so no header line passes 78 characters."""
    lines, line = [], ""
    width = 78 - first
    for test in tests:
        piece = test + ","
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line, width = "", 70
        line += piece
    lines.append(line)
    return "\r\n\t".join(lines).rstrip(",")


def tag_subject(data: bytes, tag: str) -> bytes:
    """Put `tag` in front of the Subject (added if there is none), once."""
    if not tag.isascii():
        tag = Header(tag, "utf-8").encode()  # RFC 2047: headers are ASCII
    prefix = tag.encode("ascii") + b" "
    seen = False

    def edit(name: bytes, field: bytes) -> bytes | None:
        nonlocal seen
        if name != b"subject" or seen:
            return field
        seen = True
        head, _, value = field.partition(b":")
        if value.lstrip().startswith(prefix.strip()):
            return field
        return head + b": " + prefix + value.lstrip(b" \t")

    out = edit_header_fields(data, edit)
    if not seen:
        out = b"Subject: " + prefix.strip() + b"\r\n" + data
    return out


class Plugin(BasePlugin):
    name = "spamassassin"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        c = settings.plugin_settings.spamassassin
        self.socket = Path(c.socket)
        self.tag_level = c.tag_level  # what spamassassin.sensitivity makes of it
        self.reject_level = c.reject_level
        self.max_size = c.max_message_size
        self.scan_local = c.scan_local
        self.subject = c.subject if c.subject_tag else ""
        self.timeout = float(c.timeout)
        self.defer = c.on_error == "defer"

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        txn.data = drop_spam_headers(txn.data)  # only our verdict may sort mail
        if (conn.authenticated or conn.relay_client) and not self.scan_local:
            return None
        if conn.whitelisted or txn.whitelisted:
            self.log.info("not scanned: whitelisted")
            return None
        size = len(txn.data)
        if size > self.max_size:
            self.log.info("not scanned: %d bytes is over max_message_size %d", size,
                          self.max_size)
            txn.prepend_header("X-Spam-Status", f"No, not scanned: message larger than "
                               f"{self.max_size} bytes")
            return None
        try:
            score, tests = await symbols(txn.data, self.socket, self.timeout)
        except SpamdError as e:
            if self.defer:
                self.log.error("deferred, message not scanned: %s", e)
                return denysoft(replies.SPAM_FILTER_UNAVAILABLE)
            self.log.error("accepted unscanned (on_error = accept): %s", e)
            txn.prepend_header("X-Spam-Status", "No, not scanned: spam filter unavailable")
            return None
        tagged = score >= self.tag_level
        self.log.info("score %.1f (tag %g, reject %s): %s", score, self.tag_level,
                      "none" if self.reject_level is None else f"{self.reject_level:g}",
                      ",".join(tests) or "no tests")
        if self.reject_level is not None and score >= self.reject_level:
            conn.karma -= 1
            return deny(replies.SPAM_REFUSED.format(score=score, limit=self.reject_level))
        status = (f"{'Yes' if tagged else 'No'}, score={score:.1f} "
                  f"required={self.tag_level:.1f} tests=")
        status += fold_tests(tests, len("X-Spam-Status: ") + len(status)) if tests \
            else "none"
        if tagged:
            if self.subject:
                txn.data = tag_subject(txn.data, self.subject)
            txn.prepend_header("X-Spam-Flag", "YES")
        txn.prepend_header("X-Spam-Level", "*" * max(0, min(int(score), MAX_STARS)))
        txn.prepend_header("X-Spam-Score", f"{score:.1f}")
        txn.prepend_header("X-Spam-Status", status)
        return None
