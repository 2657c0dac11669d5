"""disclaimer: appends a disclaimer to mail our users send outside (SME disclaimer).

Only mail from one of our domains with at least one recipient elsewhere gets it (SME:
internal to external, never internal to internal). The text is the sender domain's own
([domains.*] disclaimer) or else the global one; no text, no change. It is added to the
end of the message text: to the plain text body, and to the HTML body as a paragraph,
decoded and re-encoded in the part's own transfer encoding. In a multipart/alternative
both versions get it; in other multiparts the first text body (attachments are never
touched). Signed or encrypted messages are left alone: a change would break them.
Settings: [smtpd.disclaimer] enabled, text; [domains.*] disclaimer.
"""

from __future__ import annotations

import asyncio
import html
import re
from email.message import MIMEPart
from typing import Any, cast

from appliance.smtpd.address import split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mime import parse, serialize
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.settings import Settings

SEALED = ("multipart/signed", "multipart/encrypted", "application/pkcs7-mime",
          "application/x-pkcs7-mime")
BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
MAX_SIZE = 10 * 1024 * 1024  # larger messages (big attachments) are passed unchanged


def _is_attachment(part: MIMEPart) -> bool:
    return part.get_content_disposition() == "attachment"


def _first(parts: list[MIMEPart], ctype: str) -> MIMEPart | None:
    """The first text part of this type, looking into multipart/related too."""
    for part in parts:
        if _is_attachment(part):
            continue
        if part.get_content_type() == ctype:
            return part
        if part.get_content_type() == "multipart/related":
            found = _first(list(part.iter_parts()), ctype)
            if found is not None:
                return found
    return None


def body_parts(part: MIMEPart) -> list[MIMEPart]:
    """The text parts that make up the message body, to which the disclaimer goes."""
    ctype = part.get_content_type()
    if ctype in SEALED:
        return []
    if ctype == "multipart/alternative":
        children = list(part.iter_parts())
        return [p for p in (_first(children, "text/plain"), _first(children, "text/html"))
                if p is not None]
    if part.is_multipart():
        for child in part.iter_parts():
            if _is_attachment(child) or child.get_content_type() == "message/rfc822":
                continue
            found = body_parts(child)
            if found:
                return found
            if child.get_content_type() in SEALED:
                return []
        return []
    if ctype in ("text/plain", "text/html") and not _is_attachment(part):
        return [part]
    return []


def _append_plain(content: str, text: str) -> str:
    content = content.replace("\r\n", "\n")
    if content and not content.endswith("\n"):
        content += "\n"
    return content + "\n" + text + "\n"


def _append_html(content: str, text: str) -> str:
    content = content.replace("\r\n", "\n")
    para = "<p>" + html.escape(text).replace("\n", "<br>\n") + "</p>\n"
    ends = list(BODY_END.finditer(content))
    if ends:
        at = ends[-1].start()
        return content[:at] + para + content[at:]
    if content and not content.endswith("\n"):
        content += "\n"
    return content + para


def add_text(part: MIMEPart, text: str, root: bool) -> None:
    """Append `text` to a text/plain or text/html part, keeping its encoding."""
    subtype = part.get_content_subtype()
    raw = cast(bytes, part.get_payload(decode=True) or b"")  # a text part decodes to bytes
    # Strictly in the declared charset: text the email package would decode with
    # replacement characters (8-bit text labelled us-ascii...) is left untouched.
    content = raw.decode(part.get_content_charset() or "us-ascii")
    new = _append_plain(content, text) if subtype == "plain" else _append_html(content, text)
    charset = part.get_content_charset() or "us-ascii"
    try:
        new.encode(charset)
    except (LookupError, UnicodeError):
        charset = "utf-8"
    cte = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    if cte not in ("quoted-printable", "base64"):
        if new.isascii():
            cte = "7bit"
        elif cte != "8bit":
            cte = "quoted-printable"  # 7bit before: stay 7bit-clean
    header = part["Content-Type"]
    params = {k: v for k, v in (header.params.items() if header is not None else ())
              if k.lower() != "charset"}
    keep = [(k, v) for k, v in part.items()
            if k.lower().startswith("content-")
            and k.lower() not in ("content-type", "content-transfer-encoding")]
    had_version = "MIME-Version" in part
    part.set_content(new, subtype=subtype, charset=charset, cte=cte, params=params)
    for name in {k for k, _ in keep}:  # set_content drops every Content-* header
        del part[name]
    for name, value in keep:
        part[name] = value
    if not root and not had_version:
        del part["MIME-Version"]


def rewrite(data: bytes, text: str) -> tuple[bytes | None, str]:
    """The message with the disclaimer (None: unchanged), and what happened."""
    msg = parse(data)
    parts = body_parts(msg)
    if not parts:
        return None, f"no text body to add to ({msg.get_content_type()})"
    for part in parts:
        try:
            add_text(part, text, part is msg)
        except (LookupError, UnicodeError) as e:
            return None, f"a text part cannot be decoded as labelled ({e}): left unchanged"
    out = serialize(msg)
    if out is None:
        return None, "result would not have CRLF line ends"
    return out, "added to " + ", ".join(p.get_content_type() for p in parts)


class Plugin(BasePlugin):
    name = "disclaimer"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.domains = frozenset(d.lower() for d in settings.local_domains)
        self.text = self._clean(settings.plugin_settings.disclaimer.text)
        self.per_domain = {
            name.lower(): self._clean(entry.disclaimer)
            for name, entry in settings.domains.items()
        }

    @staticmethod
    def _clean(text: Any) -> str:
        lines = str(text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return "\n".join(line.rstrip() for line in lines).strip("\n")

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> None:
        domain = split_address(txn.sender)[1] if txn.sender else ""
        if domain not in self.domains:
            return
        if all(split_address(r)[1] in self.domains for r in txn.recipients):
            return
        text = self.per_domain.get(domain) or self.text
        if not text:
            return
        if len(txn.data) > MAX_SIZE:
            self.log.info("not added: message larger than %d bytes", MAX_SIZE)
            return
        try:
            data, note = await asyncio.to_thread(rewrite, txn.data, text)
        except Exception as e:  # a message the email package cannot rewrite
            self.log.info("not added: %s: %s", type(e).__name__, str(e)[:100])
            return
        if data is not None:
            txn.data = data
        self.log.info("disclaimer for %s: %s", domain, note)
