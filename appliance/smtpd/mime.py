"""Parsing, re-serializing and header editing for the code that rewrites a message.

tnef2mime and disclaimer change a message's MIME structure: they parse a private copy
(`Transaction.message` is shared and read-only), change it, and write it back with CRLF
line ends. spamassassin, clamav and the Authentication-Results writer
(appliance.smtpd.mailauth) edit header fields in place (edit_header_fields). Headers
are written as they came (no refolding), so parts and headers nobody touched keep their
bytes. A result with a bare CR or LF is never returned:
the pipeline refuses those on input and Postfix gets `txn.data` as is.
"""

from __future__ import annotations

import email.policy
import io
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.parser import BytesParser

# SMTP line ends; source headers are written back unfolded-as-received.
POLICY = email.policy.SMTP.clone(refold_source="none")


def parse(data: bytes) -> EmailMessage:
    """A private, mutable copy of the message."""
    msg = BytesParser(policy=POLICY).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def only_crlf(data: bytes) -> bool:
    """True if every CR and every LF in `data` is part of a CRLF pair."""
    crlf = data.count(b"\r\n")
    return data.count(b"\n") == crlf and data.count(b"\r") == crlf


def serialize(msg: EmailMessage) -> bytes | None:
    """The message as bytes with CRLF line ends, or None if that cannot be done safely."""
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=POLICY).flatten(msg)
    data = out.getvalue()
    return data if only_crlf(data) else None


def edit_header_fields(data: bytes, edit: Callable[[bytes, bytes], bytes | None]) -> bytes:
    """Rewrite the header block field by field, without parsing the message.

    `edit(name, field)` gets each field's lower-cased name and its raw bytes (with its
    continuation lines, without the final CRLF) and returns the bytes to keep in its
    place, or None to drop it. The body is never touched; an unchanged header block
    returns `data` itself.
    """
    end = data.find(b"\r\n\r\n")
    head, rest = (data, b"") if end < 0 else (data[: end + 2], data[end + 2:])
    fields: list[list[bytes]] = []  # each header field with its continuation lines
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    kept: list[bytes] = []
    changed = False
    for lines in fields:
        field = b"\r\n".join(lines)
        name, sep, _ = field.partition(b":")
        out = edit(name.strip().lower(), field) if sep else field
        changed |= out != field
        if out is not None:
            kept.append(out)
    return b"\r\n".join(kept) + rest if changed else data
