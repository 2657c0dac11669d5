"""Mail authentication helpers shared by spf, dkim, dmarc, dkim_sign, sender_login and
the DMARC evaluation and reports (appliance.smtpd.dmarc):

- organizational domains (the public suffix list, RFC 7489 §3.2) and identifier alignment;
- the From: header domains of a message;
- the one Authentication-Results header (RFC 8601). spf, dkim and dmarc each append their
  part ("spf=pass smtp.mailfrom=example.net") to `txn.auth_results`; the last of them in
  the chain (dmarc, which SME always runs; dkim when dmarc is disabled) writes the
  header once, after removing any Authentication-Results that claim to come from us.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import re
from email.parser import BytesHeaderParser

from publicsuffixlist import PublicSuffixList

from appliance.smtpd.hooks import Transaction
from appliance.smtpd.mime import edit_header_fields

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")


@functools.lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organizational domain: mail.example.co.uk -> example.co.uk."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(identifier: str, author_domain: str, mode: str) -> bool:
    """Identifier alignment: strict ("s") equal names, relaxed ("r") same org domain."""
    a, b = identifier.lower().rstrip("."), author_domain.lower().rstrip(".")
    if not a or not b:
        return False
    if a == b:
        return True
    return mode != "s" and org_domain(a) == org_domain(b)


def is_domain(name: str) -> bool:
    return bool(DOMAIN_RE.match(name.lower().rstrip(".")))


# -- From: ------------------------------------------------------------------------------


_AT_DOMAIN = re.compile(r"@\s*([A-Za-z0-9_.-]+)")


def from_values(header_bytes: bytes) -> list[str]:
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_bytes)
    return [str(v) for v in headers.get_all("From") or []]


def from_addresses(header_bytes: bytes) -> list[str]:
    """Every address in every From: header of a message (may be empty)."""
    values = from_values(header_bytes)
    return [addr for _name, addr in email.utils.getaddresses(values) if "@" in addr]


def author_domains(header_bytes: bytes) -> set[str]:
    """The distinct domains of the From: addresses (RFC 7489 §6.6.1). A From: the
    address parser cannot read still yields the domains after its @ signs, so that a
    malformed header cannot slip past DMARC."""
    domains = {domain_of(a) for a in from_addresses(header_bytes)}
    if not domains:
        domains = {m.lower().rstrip(".") for v in from_values(header_bytes)
                   for m in _AT_DOMAIN.findall(v)}
    return domains


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").lower().rstrip(".")


# -- Authentication-Results -------------------------------------------------------------


def add_result(txn: Transaction, part: str) -> None:
    """Append one result ("dkim=pass header.d=example.net") for the A-R header."""
    txn.auth_results.append(part)


def comment(text: str) -> str:
    """A safe RFC 8601 comment: no parentheses, backslashes or control characters."""
    cleaned = re.sub(r"[()\\\x00-\x1f\x7f]+", " ", text).strip()
    return f" ({cleaned[:120]})" if cleaned else ""


def token(text: str) -> str:
    """A value safe in an A-R property (header.d=...), "unknown" if nothing is left."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "", text)[:253] or "unknown"


def _authserv_id(value: bytes) -> bytes:
    """The authserv-id of an Authentication-Results value: unfolded, comments skipped."""
    text = re.sub(rb"\s+", b" ", value)
    while True:  # drop (comments), innermost first
        shorter = re.sub(rb"\([^()]*\)", b" ", text)
        if shorter == text:
            break
        text = shorter
    words = text.split(b";", 1)[0].split()
    return words[0].lower() if words else b""


def _drop_our_headers(data: bytes, authserv_id: str) -> bytes:
    """Remove Authentication-Results fields that claim our authserv-id (RFC 8601 §5)."""
    ours = authserv_id.lower().encode()

    def edit(name: bytes, field: bytes) -> bytes | None:
        if name == b"authentication-results" and _authserv_id(
                field.partition(b":")[2]) == ours:
            return None
        return field

    return edit_header_fields(data, edit)


def drop_forged(txn: Transaction, authserv_id: str) -> None:
    """For mail we do not judge: no verdict of ours, and no forged one in our name."""
    txn.data = _drop_our_headers(txn.data, authserv_id)


def write_header(txn: Transaction, authserv_id: str) -> None:
    """Prepend the single Authentication-Results header with every part collected."""
    parts = txn.auth_results
    txn.data = _drop_our_headers(txn.data, authserv_id)
    value = f"{authserv_id};" + "".join(f"\r\n\t{p};" for p in parts[:-1])
    value += f"\r\n\t{parts[-1]}" if parts else " none"
    txn.prepend_header("Authentication-Results", value)
