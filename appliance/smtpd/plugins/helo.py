"""helo: checks the HELO/EHLO name (SME HeloPolicy, badhelo; qpsmtpd helo).

The tests per `policy` are qpsmtpd's:

- lenient: is_in_badhelo (the `bad_helo` list; `*` and `?` wildcards), invalid_localhost
  ("localhost" from anywhere but loopback), is_forged_literal ([address] that is not
  the client's), is_plain_ip (an address without brackets is no valid HELO);
- rfc: lenient, plus is_not_fqdn (no dot, or characters a host name cannot have),
  no_forward_dns (the name has no A/AAAA record), no_reverse_dns (the client's address
  has no PTR);
- strict: rfc, plus is_address_literal (no [address] at all) and no_matching_dns
  (neither the name's addresses nor the client's PTR names point at each other; like
  qpsmtpd, a /24 (/64) or the last two labels are close enough: server pools).

The DNS-free tests run first, so a bad name costs no lookup. A DNS lookup that times
out never fails a test: a slow nameserver is no sign of a spammer. (RFC 5321 4.1.4 does
not allow refusing mail only because the HELO name and the address disagree; strict
does, as in qpsmtpd, so pair it with reject = naughty or off.) Trusted clients (relay,
authenticated, whitelisted) and HELO names in the whitelists plugin's `helo` list are
not checked.
A missing HELO name is tolerated but costs two karma points, as in qpsmtpd; a name whose
forward and reverse DNS both match the client earns one.

`reject`: deny, naughty (the naughty plugin refuses later, after a chance to AUTH, which
matters for laptops that say "HELO my-pc"), or off (log only).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field

import dns.exception

from appliance.smtpd import replies
from appliance.smtpd.dns import DNSTempError
from appliance.smtpd.hooks import Connection
from appliance.smtpd.peers import ip_address
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins.whitelists import name_pattern
from appliance.smtpd.results import Result, refuse
from appliance.smtpd.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LENIENT = ("is_in_badhelo", "invalid_localhost", "is_forged_literal", "is_plain_ip")
RFC = (*LENIENT, "is_not_fqdn", "no_forward_dns", "no_reverse_dns")
STRICT = (*RFC, "is_address_literal", "no_matching_dns")
POLICIES = {"lenient": LENIENT, "rfc": RFC, "strict": STRICT}
DNS_TESTS = ("no_forward_dns", "no_reverse_dns", "no_matching_dns")
REJECT_MODES = ("deny", "naughty", "off")  # as results.refuse reads them

RESULT_NOTE = "helo_result"  # (name, result): a repeated EHLO (after STARTTLS) is free
FQDN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


def literal_ip(host: str) -> IPAddress | None:
    """The address in an address literal: [192.0.2.1] or [IPv6:2001:db8::1]."""
    if not (host.startswith("[") and host.endswith("]")):
        return None
    inner = host[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    return ip_address(inner)


def same_network(a: IPAddress, b: IPAddress) -> bool:
    if a.version != b.version:
        return False
    prefix = 24 if a.version == 4 else 64
    return ipaddress.ip_network(f"{a}/{prefix}", strict=False) == ipaddress.ip_network(
        f"{b}/{prefix}", strict=False)


def last_two_labels(name: str) -> tuple[str, ...]:
    return tuple(name.lower().rstrip(".").split(".")[-2:])


@dataclass
class Facts:
    """What the DNS tests need, looked up once per HELO."""

    client: IPAddress | None
    looked_up: bool = False
    addresses: list[str] = field(default_factory=list)  # A and AAAA of the HELO name
    forward_unknown: bool = False  # a lookup timed out and found nothing
    names: list[str] = field(default_factory=list)  # PTR of the client
    reverse_unknown: bool = False


class Plugin(BasePlugin):
    name = "helo"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.helo
        policy = config.policy
        # DNS-free tests first, each group in qpsmtpd's order
        tests = POLICIES[policy]
        self.tests = [t for t in tests if t not in DNS_TESTS] + [
            t for t in tests if t in DNS_TESTS]
        self.reject = config.reject
        self.bad_helo = name_pattern(config.bad_helo)

    # -- the tests: each returns why the name fails, or None -------------------------

    def is_in_badhelo(self, host: str, facts: Facts) -> str | None:
        if self.bad_helo is not None and self.bad_helo.fullmatch(host.lower().rstrip(".")):
            return "that HELO name is not believable"
        return None

    def invalid_localhost(self, host: str, facts: Facts) -> str | None:
        if host.lower().rstrip(".") == "localhost" and not (
                facts.client is not None and facts.client.is_loopback):
            return "you are not localhost"
        return None

    def is_forged_literal(self, host: str, facts: Facts) -> str | None:
        literal = literal_ip(host)
        if literal is not None and literal != facts.client:
            return "the address literal is not your address"
        return None

    def is_plain_ip(self, host: str, facts: Facts) -> str | None:
        if ip_address(host) is not None:
            return "a bare IP address is not a valid HELO name (use [address])"
        return None

    def is_not_fqdn(self, host: str, facts: Facts) -> str | None:
        if literal_ip(host) is not None:
            return None
        if "." not in host.rstrip("."):
            return "the HELO name is not fully qualified"
        if not set(host.lower()) <= FQDN_CHARS:
            return "the HELO name has characters a host name cannot have"
        return None

    def is_address_literal(self, host: str, facts: Facts) -> str | None:
        if literal_ip(host) is not None:
            return "address literals are not accepted here"
        return None

    def no_forward_dns(self, host: str, facts: Facts) -> str | None:
        if literal_ip(host) is not None or facts.addresses or facts.forward_unknown:
            return None
        return "the HELO name does not resolve"

    def no_reverse_dns(self, host: str, facts: Facts) -> str | None:
        if facts.names or facts.reverse_unknown:
            return None
        return "your address has no reverse DNS"

    def no_matching_dns(self, host: str, facts: Facts) -> str | None:
        if self.forward_match(facts) or self.reverse_match(host, facts):
            return None
        if facts.forward_unknown or facts.reverse_unknown:
            return None
        return "the HELO name and your address do not match in DNS"

    # -- DNS -----------------------------------------------------------------------------

    @staticmethod
    def forward_match(facts: Facts) -> bool:
        client = facts.client
        return client is not None and any(
            (ip := ip_address(a)) is not None and (ip == client or same_network(ip, client))
            for a in facts.addresses)

    @staticmethod
    def reverse_match(host: str, facts: Facts) -> bool:
        helo = host.lower().rstrip(".")
        return any(n.lower().rstrip(".") == helo or (
            n.count(".") >= 1 and last_two_labels(n) == last_two_labels(helo))
            for n in facts.names)

    def _answer(self, conn: Connection, answer: object) -> tuple[list[str], bool]:
        """(records, unknown) from one gathered lookup."""
        if isinstance(answer, DNSTempError):
            self.log.info("%s: DNS timeout, its HELO test is skipped (%s)", conn.remote_ip,
                          answer)
            return [], True
        if isinstance(answer, dns.exception.DNSException):
            return [], False  # a name DNS cannot even hold (label too long...): no records
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, list)
        return answer, False

    async def _lookup(self, conn: Connection, host: str, facts: Facts) -> None:
        resolver = self.ctx.resolver
        lookups = [resolver.ptr(str(facts.client or conn.remote_ip))]
        if literal_ip(host) is None:
            name = host.rstrip(".")
            lookups += [resolver.a(name), resolver.aaaa(name)]
        ptr, *forward = await asyncio.gather(*lookups, return_exceptions=True)
        facts.names, facts.reverse_unknown = self._answer(conn, ptr)
        unknown = False
        for answer in forward:
            records, temp = self._answer(conn, answer)
            facts.addresses += records
            unknown = unknown or temp
        facts.forward_unknown = unknown and not facts.addresses
        facts.looked_up = True

    # -- the hook --------------------------------------------------------------------------

    async def hook_helo(self, conn: Connection, host: str) -> Result | None:
        if not host:
            conn.karma -= 2
            self.log.info("%s: no HELO name, tolerated", conn.remote_ip)
            return None
        if conn.trusted or conn.helo_whitelisted:
            return None
        cached = conn.notes.get(RESULT_NOTE)
        if isinstance(cached, tuple) and cached[0] == host.lower():
            return cached[1]
        result = await self._check(conn, host)
        conn.notes[RESULT_NOTE] = (host.lower(), result)
        return result

    async def _check(self, conn: Connection, host: str) -> Result | None:
        facts = Facts(client=ip_address(conn.remote_ip))
        for test in self.tests:
            if test in DNS_TESTS and not facts.looked_up:
                await self._lookup(conn, host, facts)
            reason = getattr(self, test)(host, facts)
            if reason:
                self.log.info("%s: HELO %s fails %s (%s)", conn.remote_ip, host[:64], test,
                              self.reject)
                if self.reject != "naughty":  # the pipeline charges the naughty mark
                    conn.karma -= 1
                return refuse(self.reject,
                              replies.HELO_CHECK_FAILED.format(test=test, reason=reason))
        if facts.looked_up and self.forward_match(facts) and self.reverse_match(host, facts):
            conn.karma += 1  # forward and reverse DNS agree: a well-kept server
        return None
