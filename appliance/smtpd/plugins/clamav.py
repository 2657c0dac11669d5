"""clamav: virus scanning with clamd (SME virus/clamdscan: scan_all, defer_on_error).

After DATA the whole message is streamed to clamd (INSTREAM); clamd decodes MIME and
archives itself. A virus is refused with 550 and the signature's name. What clamd could
not fully scan (an archive past MaxFiles, MaxRecursion or MaxFileSize, reported as
Heuristics.Limits.Exceeded) is refused too, as on SME. Before that, zip attachments are
checked for members over 1 MB that expand more than archive_max_compression_ratio times
(SME's ArchiveMaxCompressionRatio, which clamd itself no longer has).

clamd unreachable, without signatures, timing out or failing: 451 (the sender retries,
SME's defer_on_error), unless on_error = "accept", which lets the message through with
an X-Virus-Checked header saying it was not scanned. Messages larger than
max_scanner_size are not scanned (SME MaxScannerSize) and say so in that header.
Runs for every client, our own users too (SME scans all mail).
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from email.message import EmailMessage
from pathlib import Path

from appliance.services.clamav.client import ClamdError, instream
from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mime import edit_header_fields
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny, denysoft
from appliance.smtpd.settings import Settings

HEADER = "X-Virus-Checked"
HEADER_LC = HEADER.lower().encode()
ZIP_BOMB_FLOOR = 1024 * 1024  # smaller members may compress well (empty CSV cells)
# a zip attachment, by file name, type or its base64-encoded "PK\3\4" magic (a body
# that only mentions "file.zip" does not cost a MIME parse)
MAYBE_ZIP = re.compile(rb'(?i)name\*?=\s*"?[^"\r\n;]*\.zip\b|application/(?:x-)?zip|^UEsDB',
                       re.MULTILINE)


def printable(text: str, limit: int = 80) -> str:
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)[:limit]


def zip_bomb(msg: EmailMessage, max_ratio: int) -> str | None:
    """The first zip member expanding more than max_ratio times, as 'zip: member'."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload.startswith(b"PK\x03\x04"):
            continue
        try:
            members = zipfile.ZipFile(io.BytesIO(payload)).infolist()
        except (zipfile.BadZipFile, ValueError, OSError):
            continue  # clamd judges archives it can read; a broken one holds nothing
        for info in members:
            if info.file_size > ZIP_BOMB_FLOOR and \
                    info.file_size > max_ratio * max(info.compress_size, 1):
                return f"{part.get_filename() or 'zip'}: {info.filename}"
    return None


class Plugin(BasePlugin):
    name = "clamav"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        c = settings.plugin_settings.clamav
        self.socket = Path(c.socket)
        self.max_size = c.max_scanner_size
        self.max_ratio = c.archive_max_compression_ratio
        self.reject_unscannable = c.reject_unscannable
        self.timeout = float(c.timeout)
        self.defer = c.on_error == "defer"

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        # only our own X-Virus-Checked may say a message was scanned
        txn.data = edit_header_fields(txn.data, lambda name, field: None if name == HEADER_LC
                                      else field)
        size = len(txn.data)
        if size > self.max_size:
            self.log.info("not scanned: %d bytes is over max_scanner_size %d", size,
                          self.max_size)
            txn.prepend_header(HEADER, f"not scanned: message larger than {self.max_size} "
                               "bytes")
            return None
        if self.max_ratio and MAYBE_ZIP.search(txn.data):
            bomb = await asyncio.to_thread(zip_bomb, await txn.parsed(), self.max_ratio)
            if bomb:
                self.log.info("refused: %s expands more than %d times", bomb, self.max_ratio)
                return deny(replies.ARCHIVE_BOMB.format(ratio=self.max_ratio,
                                                     name=printable(bomb)))
        try:
            result = await instream(self.socket, txn.data, self.timeout)
        except ClamdError as e:
            if self.defer:
                self.log.error("deferred, message not scanned: %s", e)
                return denysoft(replies.VIRUS_SCANNER_UNAVAILABLE)
            self.log.error("accepted unscanned (on_error = accept): %s", e)
            txn.prepend_header(HEADER, "not scanned: virus scanner unavailable")
            return None
        if result.infected and (self.reject_unscannable or not result.unscannable):
            name = printable(result.signature)
            self.log.info("refused: %s", name)
            if result.unscannable:
                return deny(replies.NOT_FULLY_SCANNED.format(name=name))
            return deny(replies.VIRUS_FOUND.format(name=name))
        txn.prepend_header(HEADER, f"Checked by ClamAV on {self.ctx.hostname}")
        self.log.info("clean, %d bytes scanned", size)
        return None
