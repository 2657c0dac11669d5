"""Our trace header (RFC 5321 §4.4): the Received line each accepted message gets.

The handler prepends it to the message before the data_post hooks, so every plugin and
spamd see the message as it will be queued, with this hop first; plugins' own trace
fields (Received-SPF, Authentication-Results) then go above it, as RFC 7208 and RFC 8601
ask. In the form Postfix writes, which SpamAssassin's Received parser knows:

    Received: from client.example.org (client.example.org [198.51.100.7])
    \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
    \t(Authenticated sender: alice)
    \tby mail.example.com with ESMTPSA id 5C1F0A9B2D7E4F61
    \tfor <bob@example.com>; Sun, 06 Dec 2026 21:04:05 +0000

The protocol is RFC 3848's (ESMTP, ESMTPS, ESMTPA, ESMTPSA; SMTP after HELO), `for`
only when there is exactly one recipient (more would disclose the others to each).
The client's name is its forward-confirmed reverse DNS name, or "unknown": the lookup
starts when the client connects and runs beside the session (as Postfix looks the
client up at connect), so DATA normally finds it done. Every client-chosen text (HELO,
recipient) is reduced to printable ASCII without the characters that would end a comment
or the from clause, and capped, so each folded line stays far below 998 characters.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import secrets
from ipaddress import ip_address

from appliance.smtpd.dns import DNSTempError, Resolver
from appliance.smtpd.hooks import Connection, Transaction

log = logging.getLogger("appliance.smtpd.received")

UNKNOWN = "unknown"  # as Postfix writes a client without (confirmed) reverse DNS
MAX_HELO = 255  # a domain name's limit (RFC 1035); longer HELOs are cut
MAX_ADDRESS = 256  # RFC 5321 §4.5.3.1.3 path limit: a longer recipient gets no `for`
MAX_PTR_NAMES = 3  # PTR names tried for a forward match
MAX_LINE = 998  # RFC 5322 §2.1.1

_LITERAL = re.compile(r"^\[(?:IPv6:)?[0-9A-Fa-f:.]+\]$")
# Printable ASCII minus what would end a comment, a literal or the clause early.
_UNSAFE = re.compile(r"[^\x21-\x7e]|[()\\;]")
_UNSAFE_ADDRESS = re.compile(r"[^\x21-\x7e]|[()\\;<>]")
# A host name as the from clause may show it (RFC 1123 labels; "_" is not in one):
# a PTR record can hold any bytes, `[` or `]` included.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
MAX_HOST_NAME = 253
_background: set[asyncio.Task[str]] = set()


def address_literal(ip: str) -> str:
    """The client's address as RFC 5321 §4.1.3 writes it inside the brackets, as Postfix
    does: 198.51.100.7, IPv6:2001:db8::7 (compressed, lower case)."""
    try:
        addr = ip_address(ip)
    except ValueError:
        return _UNSAFE_ADDRESS.sub("?", ip.replace("[", "?").replace("]", "?"))
    return f"IPv6:{addr}" if addr.version == 6 else str(addr)


def clean_helo(helo: str) -> str:
    """The HELO name as it may appear in a header: unsafe characters become '?'."""
    text = _UNSAFE.sub("?", helo[:MAX_HELO])
    if not _LITERAL.match(text):
        text = text.replace("[", "?").replace("]", "?")  # only an address literal has []
    return text or UNKNOWN


def protocol(conn: Connection) -> str:
    """RFC 3848's WITH protocol type."""
    if not conn.esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if conn.tls else "") + ("A" if conn.authenticated else "")


def new_id() -> str:
    """Unique per transaction (64 random bits), to find the message in our log."""
    return secrets.token_hex(8).upper()


async def forward_confirmed_name(resolver: Resolver, ip: str) -> str:
    """The client's PTR name whose A/AAAA records include its address, else UNKNOWN."""
    try:
        addr = ip_address(ip)
        lookup = resolver.a if addr.version == 4 else resolver.aaaa
        for candidate in (await resolver.ptr(str(addr)))[:MAX_PTR_NAMES]:
            if str(addr) in await lookup(candidate):
                return candidate.rstrip(".") or UNKNOWN
    except (DNSTempError, ValueError):
        pass
    return UNKNOWN


def look_up_client_name(conn: Connection, resolver: Resolver) -> None:
    """Start the lookup at connect; client_name() collects it."""
    task = asyncio.ensure_future(forward_confirmed_name(resolver, conn.remote_ip))
    _background.add(task)
    task.add_done_callback(_background.discard)
    conn.name_lookup = task


async def client_name(conn: Connection) -> str:
    """The name the lookup found, waiting for it if need be (it is bounded by the
    resolver's own timeout); UNKNOWN if none was started or it failed."""
    task = conn.name_lookup
    if task is None:
        return UNKNOWN
    try:
        name = await asyncio.shield(task)
    except Exception:  # never let a lookup cost a message
        log.exception("%s: reverse DNS lookup failed", conn.remote_ip)
        return UNKNOWN
    return name if valid_host_name(name) else UNKNOWN


def valid_host_name(name: str) -> bool:
    """Letters, digits and hyphens in dot-separated labels of 1-63, 253 at most."""
    return (len(name) <= MAX_HOST_NAME
            and all(_HOST_LABEL.fullmatch(label) for label in name.split(".")))


def cancel_lookup(conn: Connection) -> None:
    """At disconnect: a lookup still running is of no use to anyone."""
    task = conn.name_lookup
    if task is not None and not task.done():
        task.cancel()


def header(conn: Connection, txn: Transaction, hostname: str, *, name: str = UNKNOWN,
           cipher: tuple[str, str, int] | None = None, date: str | None = None) -> bytes:
    """The Received field, folded, CRLF-terminated; its id is kept in txn.received_id."""
    ident = new_id()
    txn.received_id = ident
    lines = [f"Received: from {clean_helo(conn.helo)} ({name} [{address_literal(conn.remote_ip)}])"]
    if conn.tls:
        if cipher is not None:
            cipher_name, version, bits = cipher
            lines.append(f"\t(using {_UNSAFE.sub('?', version)} with cipher "
                         f"{_UNSAFE.sub('?', cipher_name)} ({bits}/{bits} bits))")
        else:
            lines.append(f"\t(using {_UNSAFE.sub('?', conn.tls_version or 'TLS')})")
    if conn.authenticated:
        lines.append(f"\t(Authenticated sender: {_UNSAFE.sub('?', conn.auth_user)})")
    by = f"\tby {hostname} with {protocol(conn)} id {ident}"
    when = date or email.utils.formatdate(localtime=True)
    recipients = txn.recipients
    if (len(recipients) == 1 and len(recipients[0]) <= MAX_ADDRESS
            and not _UNSAFE_ADDRESS.search(recipients[0])):
        lines += [by, f"\tfor <{recipients[0]}>; {when}"]
    else:
        lines.append(f"{by}; {when}")
    # every part is capped above (or ours), so no line comes near MAX_LINE
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
