"""DMARC evaluation (RFC 7489): the policy lookup, identifier alignment and the verdict.

The author domain is the domain of the From: addresses; a message without one, or with
addresses in several domains, is not judged (several addresses of one domain are judged
by that domain, §6.6.1). Its record is looked up at _dmarc.<domain>, then at its
organizational domain (§6.6.3: exactly one record starting v=DMARC1, else none). The
message passes when SPF passed for an envelope domain aligned with it (aspf: relaxed =
same organizational domain, strict = same name) or when a valid DKIM signature's d= is
aligned (adkim). On failure the policy (sp= for subdomains when the record is the
organizational domain's), sampled by pct= (a message left out is handled one step
softer, §6.6.4), gives the disposition; reject becomes quarantine unless the local
policy lets us refuse. An aligned identifier that could not be checked (DNS timeout)
makes the verdict temperror, never fail.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.smtpd.address import split_address
from appliance.smtpd.dns import DNSTempError, Resolver
from appliance.smtpd.hooks import DkimSignature, SpfCheck, Transaction
from appliance.smtpd.mailauth import aligned, author_domains, is_domain, org_domain

_DMARC_V = re.compile(r"^\s*v\s*=\s*DMARC1\s*(?:;|$)")
_POLICIES = ("none", "quarantine", "reject")
SOFTER = {"reject": "quarantine", "quarantine": "none", "none": "none"}

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


# -- the verdict ------------------------------------------------------------------------


def author_domain(txn: Transaction) -> str | None:
    """The From: domain; None without one or with several different ones."""
    domains = author_domains(txn.header_bytes)
    if len(domains) != 1:
        return None
    domain = domains.pop()
    return domain if is_domain(domain) else None


@dataclass(frozen=True)
class Evaluation:
    """What DMARC says about one message.

    result: "none" (not judged: no single From: domain, or no record), "temperror" (the
    record or an aligned identifier could not be looked up), "pass" or "fail".
    """

    result: str
    domain: str | None = None  # the author domain
    record: DmarcRecord | None = None
    spf: SpfCheck | None = None  # what was checked, for the reports
    spf_aligned: bool = False
    dkim: tuple[DkimSignature, ...] = ()
    dkim_aligned: bool = False
    policy: str = "none"  # p= or sp=, whichever applies to the domain
    disposition: str = "none"  # none, quarantine, reject
    reason: str = ""  # why the disposition is not the policy: sampled_out, local_policy
    error: str = ""  # the DNS error when the record itself could not be looked up

    @property
    def judged(self) -> bool:
        """A verdict (pass or fail) under a policy: what karma and the reports count."""
        return self.result in ("pass", "fail")

    @property
    def auth_result(self) -> str:
        """Our part of the Authentication-Results header."""
        if self.domain is None:
            return "dmarc=none (no single From domain)"
        if self.record is None or not self.judged:
            return f"dmarc={self.result} header.from={self.domain}"
        return (f"dmarc={self.result} (p={self.record.p} dis={self.disposition}) "
                f"header.from={self.domain}")


def spf_of(txn: Transaction, helo: str) -> SpfCheck:
    """The spf plugin's result, or "none" for the identity it would have checked."""
    if txn.spf is not None:
        return txn.spf
    domain = split_address(txn.sender)[1] if txn.sender else helo.lower()
    return SpfCheck("none", "", domain)


async def evaluate(resolver: Resolver, txn: Transaction, *, helo: str, may_reject: bool,
                   sample: Callable[[], float]) -> Evaluation:
    """Judge the message. `may_reject` is the local policy (SME DMARCReject); `sample`
    returns a number in [0, 1) for pct= sampling."""
    domain = author_domain(txn)
    if domain is None:
        return Evaluation("none")
    try:
        record = await find_record(resolver, domain)
    except DNSTempError as e:
        return Evaluation("temperror", domain, error=str(e))
    if record is None:
        return Evaluation("none", domain)
    spf = spf_of(txn, helo)
    sigs: Sequence[DkimSignature] = txn.dkim or ()
    spf_ok = spf.result == "pass" and aligned(spf.domain, domain, record.aspf)
    dkim_ok = any(s.passed and aligned(s.domain, domain, record.adkim) for s in sigs)
    passed = spf_ok or dkim_ok
    policy = record.policy_for(domain)
    judged = Evaluation("pass" if passed else "fail", domain, record, spf, spf_ok,
                        tuple(sigs), dkim_ok, policy)
    # An identifier that would align but could not be checked (DNS timeout) makes the
    # verdict unknown, not "fail": a timeout never becomes a 5xx.
    if not passed and (
            (spf.result == "temperror" and aligned(spf.domain, domain, record.aspf))
            or any(s.result == "temperror" and aligned(s.domain, domain, record.adkim)
                   for s in sigs)):
        return dataclasses.replace(judged, result="temperror")
    if passed or policy == "none":
        return judged
    disposition, reason = policy, ""
    if record.pct < 100 and sample() * 100 >= record.pct:
        disposition, reason = SOFTER[policy], "sampled_out"
    if disposition == "reject" and not may_reject:
        disposition, reason = "quarantine", "local_policy"
    return dataclasses.replace(judged, disposition=disposition, reason=reason)
