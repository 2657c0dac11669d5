"""Helpers shared by spf, dkim, dmarc and dkim_sign; not a plugin itself.

- organizational domains (the public suffix list, RFC 7489 §3.2) and identifier alignment;
- DMARC record discovery (RFC 7489 §6.6.3): `_dmarc.<domain>`, then the organizational
  domain; exactly one record starting `v=DMARC1`, else none;
- the From: header domains of a message;
- the one Authentication-Results header (RFC 8601). spf, dkim and dmarc each append their
  part ("spf=pass smtp.mailfrom=example.net") to `txn.notes["auth_results"]`; the last of
  them in the chain (dmarc, which SME always runs; dkim when dmarc is disabled) writes the
  header once, after removing any Authentication-Results that claim to come from us.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from publicsuffixlist import PublicSuffixList

from appliance.smtpd.dns import Resolver
from appliance.smtpd.hooks import Transaction
from appliance.smtpd.plugins._mime import edit_header_fields

AUTH_RESULTS = "auth_results"  # txn.notes key: list of result parts, in order

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_DMARC_V = re.compile(r"^\s*v\s*=\s*DMARC1\s*(?:;|$)")
_POLICIES = ("none", "quarantine", "reject")


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


# -- DMARC records ----------------------------------------------------------------------


@dataclass(frozen=True)
class DmarcRecord:
    domain: str  # where it was found: _dmarc.<domain>
    tags: dict[str, str]

    @property
    def p(self) -> str:
        p = self.tags.get("p", "").lower()
        # RFC 7489 §6.6.3 step 6: a bad or missing p= acts as "none"
        return p if p in _POLICIES else "none"

    @property
    def sp(self) -> str:
        sp = self.tags.get("sp", "").lower()
        return sp if sp in _POLICIES else self.p

    @property
    def adkim(self) -> str:
        return "s" if self.tags.get("adkim", "r").lower() == "s" else "r"

    @property
    def aspf(self) -> str:
        return "s" if self.tags.get("aspf", "r").lower() == "s" else "r"

    @property
    def pct(self) -> int:
        try:
            return max(0, min(100, int(self.tags.get("pct", "100"))))
        except ValueError:
            return 100

    @property
    def fo(self) -> str:
        return self.tags.get("fo", "0") or "0"

    @property
    def rua(self) -> list[str]:
        """The mailto: report addresses (the `!size` limits dropped)."""
        out = []
        for uri in self.tags.get("rua", "").split(","):
            uri = uri.strip()
            if uri[:7].lower() != "mailto:":
                continue
            address = email.utils.unquote(uri[7:].split("!", 1)[0].split("?", 1)[0]).strip()
            if "@" in address and address not in out:
                out.append(address)
        return out

    def policy_for(self, author_domain: str) -> str:
        """p=, or sp= when the record is the organizational domain's and the author's
        domain is below it."""
        if author_domain.lower().rstrip(".") != self.domain:
            return self.sp
        return self.p


def parse_record(text: str) -> dict[str, str] | None:
    """The tags of a DMARC record, or None if it does not start with v=DMARC1."""
    if not _DMARC_V.match(text):
        return None
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


async def _fetch(resolver: Resolver, domain: str) -> DmarcRecord | None:
    texts = await resolver.txt(f"_dmarc.{domain}")
    records = [tags for tags in map(parse_record, texts) if tags is not None]
    if len(records) != 1:  # none, or several: no policy (RFC 7489 §6.6.3 step 5)
        return None
    return DmarcRecord(domain, records[0])


async def find_record(resolver: Resolver, domain: str) -> DmarcRecord | None:
    """The DMARC record for an author domain; raises DNSTempError."""
    domain = domain.lower().rstrip(".")
    record = await _fetch(resolver, domain)
    if record is None:
        org = org_domain(domain)
        if org != domain:
            record = await _fetch(resolver, org)
    return record


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
    parts = txn.notes.setdefault(AUTH_RESULTS, [])
    assert isinstance(parts, list)
    parts.append(part)


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
    parts = list(txn.notes.get(AUTH_RESULTS) or [])  # type: ignore[call-overload]
    txn.data = _drop_our_headers(txn.data, authserv_id)
    value = f"{authserv_id};" + "".join(f"\r\n\t{p};" for p in parts[:-1])
    value += f"\r\n\t{parts[-1]}" if parts else " none"
    txn.prepend_header("Authentication-Results", value)
