"""The DNS records one of our mail domains should publish: `appliance print-dns` prints
them as zone-file lines and `appliance dns check` looks each one up and compares.

One list, so the two can never disagree. A record is named relative to the domain's
zone ("@", "_dmarc", "mail") unless it lies outside it (the host name of a secondary
domain lives in the primary's zone): such a record has an absolute name and print-dns
shows it as a comment. The SRV records follow RFC 6186 and RFC 8314: a service that is
switched off is published as "0 0 0 ." (not offered here), so clients stop looking.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance import mta_sts
from appliance.dkim_keys import default_selector, dkim_txt

if TYPE_CHECKING:
    from appliance.config import Config

ADDRESS_PLACEHOLDER = "<public-IPv4-address>"
SPF = "v=spf1 mx a -all"
# The names the client autoconfig (Thunderbird, Outlook) and MTA-STS are fetched from;
# each is an alias of the host name, which the certificate covers them with (ACME).
ALIASES = ("mta-sts", "autoconfig", "autodiscover")


@dataclass(frozen=True)
class Record:
    name: str  # relative to the zone ("@" is the domain itself), or absolute with a dot
    rdtype: str  # MX, A, AAAA, TXT, CNAME, SRV
    value: str  # presentation form; a TXT's text unquoted
    comment: str = ""

    def fqdn(self, domain: str) -> str:
        if self.name.endswith("."):
            return self.name.rstrip(".")
        return domain if self.name == "@" else f"{self.name}.{domain}"

    @property
    def in_zone(self) -> bool:
        return not self.name.endswith(".")

    @property
    def placeholder(self) -> bool:
        return self.value == ADDRESS_PLACEHOLDER

    def zone_line(self) -> str:
        value = quoted(self.value) if self.rdtype == "TXT" else self.value
        line = f"{self.name} IN {self.rdtype} {value}"
        if self.comment:
            line += f" ; {self.comment}"
        return line if self.in_zone else f"; {line} (in the zone of {self.name.rstrip('.')})"


def quoted(text: str, size: int = 255) -> str:
    """A TXT value as bind wants it: quoted strings of at most 255 bytes each."""
    return " ".join(f'"{text[i:i + size]}"' for i in range(0, len(text), size))


def dmarc(domain: str) -> str:
    return (f"v=DMARC1; p=none; adkim=s; aspf=r; rua=mailto:dmarc-feedback@{domain}; "
            "pct=100")


def tls_rpt(domain: str) -> str:
    """RFC 8460: the daily TLS reports of sending servers go to the same mailbox as the
    DMARC reports (both aggregate reports for the admin)."""
    return f"v=TLSRPTv1; rua=mailto:dmarc-feedback@{domain}"


def public_addresses(config: Config) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(a) for a in config.data["network"]["public_addresses"]]


def _relative(fqdn: str, domain: str) -> str:
    """FQDN's name in DOMAIN's zone, or FQDN absolute when it lies outside it."""
    if fqdn == domain:
        return "@"
    if fqdn.endswith("." + domain):
        return fqdn[: -len(domain) - 1]
    return fqdn + "."


def host_records(domain: str, fqdn: str, addresses: list[Any]) -> list[Record]:
    """The MX (this host) and the host name's A/AAAA records: the known public
    addresses (network.public_addresses), or a placeholder to replace (a zone file
    refuses it until then)."""
    records = [Record("@", "MX", f"10 {fqdn}.")]
    host = _relative(fqdn, domain)
    if not addresses:
        records.append(Record(host, "A", ADDRESS_PLACEHOLDER,
                              f"placeholder: the public IPv4 address of {fqdn} (and an "
                              "AAAA record for IPv6); or set network.public_addresses"))
    for address in addresses:
        records.append(Record(host, "AAAA" if address.version == 6 else "A", str(address)))
    return records


def srv_records(fqdn: str, config: Config) -> list[Record]:
    """Where mail clients find each service (RFC 6186, RFC 8314 for implicit TLS)."""
    from appliance.services import dovecot  # its listeners

    data = config.data
    smtpd = data["smtpd"]
    services = (
        ("_submissions._tcp", smtpd["smtps"]["enabled"], smtpd["smtps"]["port"]),
        ("_submission._tcp", smtpd["submission"]["enabled"], smtpd["submission"]["port"]),
        ("_imaps._tcp", data["imap"]["enabled"], dovecot.IMAPS_PORT),
        ("_imap._tcp", data["imap"]["enabled"], dovecot.IMAP_PORT),
        ("_pop3s._tcp", data["pop3"]["enabled"], dovecot.POP3S_PORT),
        ("_pop3._tcp", data["pop3"]["enabled"], dovecot.POP3_PORT),
        ("_autodiscover._tcp", True, 443),  # Outlook, when autodiscover.DOMAIN is missing
    )
    records = []
    for name, enabled, port in services:
        if enabled:
            # priority: implicit TLS first (RFC 8314 section 5.1)
            priority = 10 if name in ("_submission._tcp", "_imap._tcp", "_pop3._tcp") else 0
            records.append(Record(name, "SRV", f"{priority} 1 {port} {fqdn}."))
        else:
            records.append(Record(name, "SRV", "0 0 0 .", "not offered here"))
    return records


def expected(domain: str, config: Config, settings: Mapping[str, Any],
             dkim_keys: str | os.PathLike[str]) -> list[Record]:
    """Every record DOMAIN should publish, in print-dns's order. SETTINGS is the SMTP
    daemons' settings file as a dict (host name, DKIM selector)."""
    domain = domain.lower().rstrip(".")
    fqdn = str(settings["hostname"]).lower().rstrip(".")
    records = host_records(domain, fqdn, public_addresses(config))
    dkim = dkim_txt(dkim_keys, domain, default_selector(settings))
    if dkim is not None:
        records.append(Record(dkim[0], "TXT", dkim[1]))
    records += [
        Record("@", "TXT", SPF),
        Record("_dmarc", "TXT", dmarc(domain)),
        Record("_mta-sts", "TXT", mta_sts.txt_record(mta_sts.policy(config)),
               "MTA-STS: servers sending here must use TLS"),
        Record("_smtp._tls", "TXT", tls_rpt(domain), "TLS-RPT: their TLS failure reports"),
    ]
    if domain in settings["delegated_domains"]:
        # its mailboxes are on another server: clients are configured for that one
        return records + [Record("mta-sts", "CNAME", f"{fqdn}.")]
    records += [Record(alias, "CNAME", f"{fqdn}.") for alias in ALIASES]
    return records + srv_records(fqdn, config)
