"""Does the world see the DNS records print-dns asks for? (`appliance dns check`)

Each record of appliance/dns_records.py is looked up through the appliance's own
resolver (Unbound, so the answers are the ones the internet's resolvers give, DNSSEC
checked) and compared with what it should be: ok, missing, or wrong with the expected
value. Beyond the list: the PTR of each public address (network.public_addresses)
should name the host, and a published SPF record other than the suggested one is ok
when it authorises the addresses the host has. The last result of each domain is kept
on the volume for `appliance status` and the console.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.resolver
import dns.reversename

from appliance import paths
from appliance.config import write_atomic
from appliance.dns_records import ADDRESS_PLACEHOLDER, Record, public_addresses

if TYPE_CHECKING:
    from appliance.config import Config

RESOLVER = "127.0.0.1"  # Unbound's address (services/unbound.py LISTEN, a test proves it)
RESOLVER_PORT = 53
LAST_CHECK = paths.DATA / "dns-check.json"
TIMEOUT_S = 10.0
OK, MISSING, WRONG = "ok", "missing", "wrong"
SHOWN = 3  # failing records a summary names (status, console): one line


@dataclass
class Finding:
    name: str  # the absolute name looked up
    rdtype: str
    state: str  # ok, missing, wrong
    expected: str
    found: list[str] = field(default_factory=list)
    note: str = ""

    def line(self) -> str:
        text = f"{self.state:<8}{self.name} {self.rdtype}"
        if self.state != OK:
            text += f": expected {self.expected}"
            if self.found:
                text += f", found {'; '.join(self.found)}"
        if self.note:
            text += f" ({self.note})"
        return text


class Lookup:
    """Answers as text, [] for no such name or no such record; a server failure or
    timeout raises dns.exception.DNSException (said as such, never "missing")."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver

    def __call__(self, name: str, rdtype: str) -> list[str]:
        try:
            answer = self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        if rdtype == "TXT":
            return [b"".join(r.strings).decode(errors="replace") for r in answer]
        return [r.to_text() for r in answer]


def resolver(address: str | None = None, port: int | None = None) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [address or RESOLVER]
    r.port = port or RESOLVER_PORT
    r.lifetime = TIMEOUT_S
    return r


def _tags(text: str) -> dict[str, str]:
    """A DKIM/DMARC-style tag list: "v=DKIM1; k=rsa; p=..." -> {"v": ..., ...}."""
    tags = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _name(value: str) -> str:
    return value.lower().rstrip(".")


def _compare(record: Record, domain: str, found: list[str], lookup: Lookup,
             config: Config) -> tuple[str, str]:
    """(state, note) of one record given what its name has."""
    rdtype, want = record.rdtype, record.value
    if record.rdtype == "TXT":
        kind = want.split(";", 1)[0].split()[0].lower()  # v=spf1, v=dkim1, v=dmarc1, ...
        if kind == "v=dkim1":  # its v= tag is optional (RFC 6376 3.6.1): any key record
            same_kind = [f for f in found if "p" in _tags(f)]
        else:
            same_kind = [f for f in found if f.split(";", 1)[0].split(" ")[0].lower() == kind]
        if not same_kind:
            return MISSING, ""
        if len(same_kind) > 1:
            return WRONG, f"{len(same_kind)} {kind} records: receivers ignore them all"
        have = same_kind[0]
        if kind == "v=dkim1":
            same = _tags(have).get("p") == _tags(want).get("p")
            return (OK, "") if same else (WRONG, "another key: mail we sign fails DKIM")
        if kind == "v=stsv1":
            same = _tags(have).get("id") == _tags(want).get("id")
            return (OK, "") if same else (WRONG, "an old id: senders keep the policy "
                                          "they cached")
        if kind == "v=spf1" and have != want:
            return _spf(domain, have, lookup, config)
        return OK, "" if have == want else "not the suggested text; present is enough"
    if rdtype == "CNAME":  # an alias of the host; its own A/AAAA records do as well
        if found:
            return (OK, "") if _name(found[0]) == _name(want) else (WRONG, "")
        own = sorted(lookup(record.fqdn(domain), "A") + lookup(record.fqdn(domain), "AAAA"))
        host = sorted(lookup(_name(want), "A") + lookup(_name(want), "AAAA"))
        if own and own == host:
            return OK, "address records, the host's"
        return (WRONG, f"its addresses {', '.join(own)} are not the host's") if own else (
            MISSING, "")
    if not found:
        return MISSING, ""
    if rdtype == "MX":
        ours = _name(want.split()[1])
        return (OK, "") if any(_name(f.split()[-1]) == ours for f in found) else (
            WRONG, "mail for the domain goes elsewhere")
    if rdtype in ("A", "AAAA"):
        if record.placeholder:
            return OK, "not compared: network.public_addresses is empty"
        return (OK, "") if want in found else (WRONG, "")
    if rdtype == "SRV":
        port, target = want.split()[2], _name(want.split()[3])
        return (OK, "") if any(f.split()[2] == port and _name(f.split()[3]) == target
                               for f in found) else (WRONG, "")
    return (OK, "") if want in found else (WRONG, "")


def _spf(domain: str, published: str, lookup: Lookup, config: Config) -> tuple[str, str]:
    """A published SPF record of the admin's own: it must authorise our addresses (the
    known public ones, else the ones the host name has). pyspf asks our resolver."""
    import spf

    addresses = [str(a) for a in public_addresses(config)]
    if not addresses:
        addresses = lookup(config.fqdn, "A") + lookup(config.fqdn, "AAAA")
    if not addresses:
        return WRONG, "cannot tell which addresses it must authorise"
    previous = dns.resolver.default_resolver
    dns.resolver.default_resolver = lookup.resolver  # pyspf's lookups: our resolver
    try:
        results = {a: spf.check2(i=a, s=f"postmaster@{domain}", h=domain)[0]
                   for a in addresses}
    finally:
        dns.resolver.default_resolver = previous
    failing = [f"{a}: {r}" for a, r in results.items() if r != "pass"]
    if failing:
        return WRONG, "does not authorise " + ", ".join(failing)
    return OK, "authorises " + ", ".join(addresses)


def _ptr(config: Config, lookup: Lookup) -> list[Finding]:
    fqdn = config.fqdn.lower()
    findings = []
    for address in public_addresses(config):
        name = dns.reversename.from_address(str(address)).to_text(omit_final_dot=True)
        found = lookup(name, "PTR")
        state = MISSING if not found else OK if any(_name(f) == fqdn for f in found) \
            else WRONG
        findings.append(Finding(name, "PTR", state, f"{fqdn}.", found,
                                "receivers distrust a server whose address does not name it"
                                if state != OK else ""))
    return findings


def check(domain: str, records: list[Record], config: Config, lookup: Lookup
          ) -> list[Finding]:
    """Every record of DOMAIN looked up and compared; the PTRs after them."""
    findings = []
    for record in records:
        name = record.fqdn(domain)
        try:
            found = lookup(name, record.rdtype)
            state, note = _compare(record, domain, found, lookup, config)
        except dns.exception.DNSException as e:
            found, state, note = [], WRONG, f"lookup failed: {e}"
        if record.placeholder:
            want = f"the public address ({ADDRESS_PLACEHOLDER})"
        else:
            want = record.value
        findings.append(Finding(name, record.rdtype, state, want, found, note))
    try:
        findings += _ptr(config, lookup)
    except dns.exception.DNSException as e:
        findings.append(Finding("PTR", "PTR", WRONG, "the host name", [], f"lookup failed: {e}"))
    return findings


def summary(findings: list[Finding]) -> str:
    counts = {s: sum(f.state == s for f in findings) for s in (OK, MISSING, WRONG)}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    bad = [f"{f.name} {f.rdtype}" for f in findings if f.state != OK]
    if len(bad) > SHOWN:  # a new box misses them all: the lines above say which
        bad = bad[:SHOWN - 1] + [f"{len(bad) - SHOWN + 1} more"]
    return text + (f": {', '.join(bad)}" if bad else "")


def save(domain: str, findings: list[Finding], domains: list[str],
         when: float | None = None) -> None:
    """Keep DOMAIN's result beside the others that are still among DOMAINS (ours)."""
    results = {d: r for d, r in _load_saved().items() if d in domains}
    results[domain] = {"checked": time.time() if when is None else when,
                       "summary": summary(findings),
                       "failing": sum(f.state != OK for f in findings),
                       "findings": [asdict(f) for f in findings]}
    write_atomic(LAST_CHECK, json.dumps(results, indent=1).encode(), mode=0o644)


def _load_saved() -> dict[str, Any]:
    try:
        data = json.loads(LAST_CHECK.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def status_lines(now: float | None = None) -> list[str]:
    """The saved results for `appliance status` and the console, one line a domain."""
    now = time.time() if now is None else now
    lines = []
    for domain, result in sorted(_load_saved().items()):
        try:
            age = max(0, int(now - float(result["checked"])))
            lines.append(f"DNS {domain}: {result['summary']} (checked {_age(age)} ago)")
        except (KeyError, TypeError, ValueError):
            continue
    return lines


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
