"""Helpers shared by the DNS list plugins (dnsbl, rhsbl, uribl); not a plugin itself.

A list entry is `zone` or `zone:extra`, split at the first colon (the extra part, a
message or a bit mask, may contain colons) by appliance.config.plugin_rules.parse_zones,
the parser the config check uses too. A list answers a listed name with an A
record in 127.0.0.0/8; other answers (a resolver that redirects NXDOMAIN to a search
page) are ignored. 127.255.255.x is the Spamhaus family's "query refused / error" code,
and 127.0.0.1 the URIBL/SURBL one for domain lists: logged, never a listing.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
ZONE_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")

LISTED = ipaddress.ip_network("127.0.0.0/8")
ERROR_CODES = ipaddress.ip_network("127.255.255.0/24")
REFUSED_DOMAIN_LIST = ipaddress.ip_address("127.0.0.1")

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def classify(answers: list[str], domain_list: bool = False) -> tuple[list[str], list[str]]:
    """Split A answers into (listing codes, error codes); answers outside 127/8 vanish."""
    listed: list[str] = []
    errors: list[str] = []
    for answer in answers:
        try:
            addr = ipaddress.ip_address(answer)
        except ValueError:
            continue
        if addr.version != 4 or addr not in LISTED:
            continue
        if addr in ERROR_CODES or (domain_list and addr == REFUSED_DOMAIN_LIST):
            errors.append(answer)
        else:
            listed.append(answer)
    return listed, errors


def clean_text(text: str, limit: int = 300) -> str:
    """A TXT record or configured message made safe for one SMTP reply line."""
    text = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return text[:limit]


def ascii_domain(name: str) -> str | None:
    """A host name in its DNS (A-label) form, lower-case; None if it is not one."""
    name = name.strip().lower().rstrip(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return name if ZONE_RE.match(name) and len(name) <= 253 else None
