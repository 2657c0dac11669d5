"""DNSSEC for the test DNS server (dnsserver.py): zones listed under "signed" in its ZONES.

Each signed zone gets one ECDSA P-256 key (algorithm 13, flags 257), made once and kept in
KEYS/ZONE.pem; its DNSKEY record, the trust anchor a validating resolver needs, is written
to KEYS/ZONE.dnskey. Every answer in the zone is signed on the fly: records with their
RRSIG, and "no such record" / "no such name" with a signed SOA and NSEC records over the
zone's names in canonical order (RFC 4034 section 6.1), as a validator demands.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEYS = Path(os.environ.get("DNSSEC_KEYS", "/state/dnssec"))
TTL = 60


class SignedZone:
    def __init__(self, zone: str) -> None:
        self.name = dns.name.from_text(zone)
        KEYS.mkdir(parents=True, exist_ok=True)
        pem = KEYS / f"{zone}.pem"
        if pem.exists():
            key = serialization.load_pem_private_key(pem.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        self.key = key
        self.dnskey = dns.dnssec.make_dnskey(key.public_key(),
                                             dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
        anchor = f"{self.name} {TTL} IN DNSKEY {self.dnskey.to_text()}\n"
        (KEYS / f"{zone}.dnskey").write_text(anchor)

    def contains(self, name: dns.name.Name) -> bool:
        return name.is_subdomain(self.name)

    def _rrset(self, name: dns.name.Name, rdtype: str, texts: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rdtype, texts)

    def _signed(self, rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        now = int(time.time())
        sig = dns.dnssec.sign(rrset, self.key, self.name, self.dnskey,
                              inception=now - 3600, expiration=now + 7 * 86400)
        return [rrset, dns.rrset.from_rdata(rrset.name, TTL, sig)]

    def _records(self, names: dict[str, dict[str, list[str]]]) -> dict[dns.name.Name,
                                                                       dict[str, list[str]]]:
        """The zone's names and their records, with the apex's SOA and DNSKEY."""
        out: dict[dns.name.Name, dict[str, list[str]]] = {}
        for text, records in names.items():
            name = dns.name.from_text(text)
            if self.contains(name):
                out[name] = {t: v for t, v in records.items() if v}
        apex = out.setdefault(self.name, {})
        apex["SOA"] = [f"ns.{self.name} hostmaster.{self.name} 1 3600 600 86400 {TTL}"]
        apex["DNSKEY"] = [self.dnskey.to_text()]
        return out

    def _nsec(self, owner: dns.name.Name, ordered: list[dns.name.Name],
              records: dict[dns.name.Name, dict[str, list[str]]]) -> list[dns.rrset.RRset]:
        following = ordered[(ordered.index(owner) + 1) % len(ordered)]
        types = " ".join(sorted({*records[owner], "RRSIG", "NSEC"},
                                key=dns.rdatatype.from_text))
        return self._signed(self._rrset(owner, "NSEC", [f"{following} {types}"]))

    def answer(self, query: dns.message.Message, response: dns.message.Message,
               names: dict[str, dict[str, list[str]]], txt: object) -> None:
        question = query.question[0]
        qname, rdtype = question.name, dns.rdatatype.to_text(question.rdtype)
        records = self._records(names)
        ordered = sorted(records)
        soa = self._signed(self._rrset(self.name, "SOA", records[self.name]["SOA"]))
        if qname in records:
            values = records[qname].get(rdtype)
            if values:
                texts = [txt(v) for v in values] if rdtype == "TXT" else values  # type: ignore[operator]
                response.answer += self._signed(self._rrset(qname, rdtype, texts))
            else:  # the name has other types only: its own NSEC says which
                response.authority += soa + self._nsec(qname, ordered, records)
            return
        before = max(n for n in ordered if n < qname)
        response.authority += soa + self._nsec(before, ordered, records)
        if not any(n.is_subdomain(qname) for n in ordered):  # not an empty non-terminal
            response.set_rcode(dns.rcode.NXDOMAIN)
            if before != self.name:  # the apex's NSEC covers the wildcard *.ZONE
                response.authority += self._nsec(self.name, ordered, records)
