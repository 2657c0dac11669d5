"""tnef2mime: turns winmail.dat (TNEF) attachments into ordinary MIME attachments.

Outlook sometimes wraps a message's attachments in one application/ms-tnef part
(winmail.dat) that other mail programs cannot open. After DATA each such part is
replaced by the files inside it, as base64 attachments typed from their names; the
rest of the message is kept as it came. A TNEF part that cannot be decoded, or holds
no files, is left alone. Setting: [smtpd.tnef2mime] enabled (SME tnef2mime).
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from email.message import EmailMessage, Message, MIMEPart
from typing import cast

import tnefparse

from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mime import POLICY, parse, serialize
from appliance.smtpd.plugins import BasePlugin

MAYBE_TNEF = re.compile(rb"ms-tnef|winmail\.dat", re.IGNORECASE)


def is_tnef(part: EmailMessage) -> bool:
    if part.is_multipart():
        return False
    if part.get_content_type() in ("application/ms-tnef", "application/vnd.ms-tnef"):
        return True
    try:
        return (part.get_filename() or "").strip().lower() == "winmail.dat"
    except (ValueError, TypeError, LookupError):
        return False


def _file_name(attachment: tnefparse.tnef.TNEFAttachment, number: int) -> str:
    name = attachment.long_filename()
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            name = name.decode("latin-1")
    name = str(name).replace("\x00", "").strip()
    name = re.split(r"[\\/]", name)[-1]  # never a path
    return "".join(c for c in name if c.isprintable()) or f"attachment-{number}.bin"


def unpack(part: EmailMessage) -> tuple[list[MIMEPart], str]:
    """The files inside a TNEF part as MIME parts, and what happened (for the log)."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        return [], "empty TNEF part"
    try:
        attachments = tnefparse.TNEF(data, do_checksum=False).attachments
        files = []
        for number, attachment in enumerate(attachments, 1):
            name = _file_name(attachment, number)
            body = attachment.data if isinstance(attachment.data, bytes) else bytes(
                attachment.data)
            ctype = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
            maintype, subtype = ctype.split("/", 1)
            file_part = MIMEPart(policy=POLICY)
            file_part.set_content(body, maintype=maintype, subtype=subtype,
                                  disposition="attachment", filename=name)
            files.append(file_part)
    except Exception as e:  # tnefparse raises anything on corrupt input
        return [], f"cannot decode TNEF: {type(e).__name__}: {str(e)[:100]}"
    if not files:
        return [], "TNEF part holds no files"
    return files, ", ".join(str(f.get_filename()) for f in files)


def convert(data: bytes) -> tuple[bytes | None, list[str]]:
    """The message with its TNEF parts unpacked (None: unchanged), and log notes."""
    msg = parse(data)
    notes: list[str] = []
    if is_tnef(msg):
        msg.make_mixed()  # the message is the TNEF part: give it a parent to live in
    changed = False
    for parent in [p for p in msg.walk() if p.is_multipart()]:
        # a multipart's payload is its parts, EmailMessage each (POLICY's message factory)
        children = cast("list[EmailMessage] | str", parent.get_payload())
        if not isinstance(children, list) or not any(is_tnef(c) for c in children):
            continue
        replaced: list[Message | str] = []  # what set_payload takes
        for child in children:
            if not is_tnef(child):
                replaced.append(child)
                continue
            files, note = unpack(child)
            notes.append(note)
            if files:
                replaced.extend(files)
                changed = True
            else:
                replaced.append(child)
        parent.set_payload(replaced)
    if not changed:
        return None, notes
    out = serialize(msg)
    if out is None:
        notes.append("result would not have CRLF line ends; left as is")
    return out, notes


class Plugin(BasePlugin):
    name = "tnef2mime"

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> None:
        if not MAYBE_TNEF.search(txn.data):
            return
        try:
            data, notes = await asyncio.to_thread(convert, txn.data)
        except Exception as e:  # a message the email package cannot rewrite
            self.log.info("message left as is: %s: %s", type(e).__name__, str(e)[:100])
            return
        if data is None:
            if notes:
                self.log.info("message left as is: %s", "; ".join(notes))
            return
        txn.data = data
        self.log.info("unpacked TNEF: %s", "; ".join(notes))
