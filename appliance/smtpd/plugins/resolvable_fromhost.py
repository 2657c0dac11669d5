"""resolvable_fromhost: the sender's domain must be able to receive replies (SME
resolvable_fromhost, formerly require_resolvable_fromhost).

At MAIL FROM the envelope sender's domain needs an MX whose host has a usable address,
or, without MX records, an A or AAAA record of its own (RFC 5321 5.1). Refused, as
`reject` says (deny, naughty or off):
  - a domain with no MX, A or AAAA record ("does not exist");
  - a null MX (RFC 7505, "MX 0 ."): the domain says it sends no mail;
  - MX records none of which resolves, or addresses only in private, loopback,
    link-local, multicast or reserved networks (qpsmtpd's invalid_resolvable_fromhost);
  - a malformed domain, and an address literal ([10.0.0.1]) of such a network.
An address literal of a public address is accepted, with a karma point off, as in
qpsmtpd. A DNS timeout defers with 451 4.4.3: never a 5xx. The null sender, trusted
clients and whitelisted senders are not checked. The documentation networks (192.0.2/24
etc.) are not in the invalid list, like qpsmtpd's.
"""

from __future__ import annotations

import asyncio
import ipaddress

from appliance.smtpd import replies
from appliance.smtpd.address import split_address
from appliance.smtpd.dns import DNSTempError
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins._dnslist import ascii_domain
from appliance.smtpd.recent import MISSING, Recent
from appliance.smtpd.results import Result, denysoft, refuse
from appliance.smtpd.settings import Settings

REJECT_MODES = ("deny", "naughty", "off")
MAX_MX = 10  # MX hosts tried per domain

INVALID_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
))



def is_valid_ip(text: str) -> bool:
    """Can mail go back to this address (not private, loopback, multicast, ...)?"""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return not any(addr in net for net in INVALID_NETWORKS if net.version == addr.version)


class _Temp(Exception):
    """Some lookup timed out and nothing else decided."""



class Plugin(BasePlugin):
    name = "resolvable_fromhost"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.resolvable_fromhost
        self.enabled = config.enabled
        self.reject = config.reject
        # A busy sender domain is judged once a minute, not once per message (temporary
        # failures are never remembered).
        self._recent: Recent[tuple[str, str] | None] = Recent()

    async def _judged(self, domain: str) -> tuple[str, str] | None:
        problem = self._recent.get(domain)
        if problem is MISSING:
            problem = await self._check(domain)  # _Temp propagates: not remembered
            self._recent.put(domain, problem)
        return problem  # type: ignore[return-value]

    async def hook_mail(self, conn: Connection, txn: Transaction,
                        sender: str) -> Result | None:
        if not self.enabled or not sender or conn.trusted or txn.whitelisted:
            return None
        raw = split_address(sender)[1]
        txn.notes["resolvable_fromhost_host"] = raw
        if raw.startswith("[") and raw.endswith("]"):
            return self._literal(conn, txn, raw)
        domain = ascii_domain(raw)
        if domain is None:
            return self._fail(conn, txn, replies.SENDER_DOMAIN_MALFORMED, raw, "malformed")
        try:
            problem = await self._judged(domain)
        except _Temp as e:
            self.log.info("defer, %s: %s", domain, e)
            txn.notes["resolvable_fromhost"] = "temporary error"
            return denysoft(replies.SENDER_DOMAIN_DEFERRED.format(domain=domain))
        if problem is None:
            return None
        reply, why = problem
        return self._fail(conn, txn, reply, domain, why)

    def _fail(self, conn: Connection, txn: Transaction, reply: str, domain: str,
              why: str) -> Result:
        txn.notes["resolvable_fromhost"] = why
        if self.reject != "naughty":  # the pipeline counts a NAUGHTY verdict itself
            conn.karma -= 1
        self.log.info("fail, %s: %s (reject %s)", domain, why, self.reject)
        return refuse(self.reject, reply.format(domain=domain))

    def _literal(self, conn: Connection, txn: Transaction, raw: str) -> Result | None:
        inner = raw[1:-1]
        if inner.lower().startswith("ipv6:"):
            inner = inner[5:]
        try:
            ipaddress.ip_address(inner)
        except ValueError:
            return self._fail(conn, txn, replies.SENDER_DOMAIN_MALFORMED, raw,
                              "malformed address literal")
        if not is_valid_ip(inner):
            return self._fail(conn, txn, replies.SENDER_DOMAIN_PRIVATE, raw,
                              "private address literal")
        conn.karma -= 1
        txn.notes["resolvable_fromhost"] = "ip"
        self.log.info("pass, %s is an address literal", raw)
        return None

    async def _check(self, domain: str) -> tuple[str, str] | None:
        """None if mail can go back to the domain, else (reply, reason); _Temp on timeout."""
        resolver = self.ctx.resolver
        try:
            mxs = await resolver.mx(domain)
        except DNSTempError as e:
            raise _Temp(str(e)) from None
        if mxs:
            hosts = [host for _, host in mxs]
            if len(hosts) == 1 and hosts[0] in (".", "", "@"):
                return replies.SENDER_DOMAIN_NULL_MX, "null MX"
            hosts = [h for h in hosts if h not in (".", "", "@")][:MAX_MX]
            results = await asyncio.gather(*(self._addresses(h) for h in hosts))
            verdict = self._judge(results)
            if verdict == "ok":
                self.log.info("pass, %s has MX", domain)
                return None
            if verdict == "temp":
                raise _Temp(f"MX hosts of {domain} did not resolve")
            if verdict == "invalid":
                return replies.SENDER_DOMAIN_PRIVATE, "MX hosts have only private addresses"
            return replies.SENDER_DOMAIN_BAD_MX, "MX hosts do not resolve"
        verdict = self._judge([await self._addresses(domain)])
        if verdict == "ok":
            self.log.info("pass, %s has an address", domain)
            return None
        if verdict == "temp":
            raise _Temp(f"addresses of {domain} did not resolve")
        if verdict == "invalid":
            return replies.SENDER_DOMAIN_PRIVATE, "only private addresses"
        return replies.SENDER_DOMAIN_UNKNOWN, "no MX, A or AAAA record"

    async def _addresses(self, host: str) -> tuple[list[str], bool]:
        """(A and AAAA addresses of host, whether a lookup timed out)."""
        try:
            ipaddress.ip_address(host)  # an MX given as an address (wrong, but seen)
        except ValueError:
            pass
        else:
            return [host], False
        answers = await asyncio.gather(self.ctx.resolver.a(host),
                                       self.ctx.resolver.aaaa(host),
                                       return_exceptions=True)
        addresses: list[str] = []
        temp = False
        for answer in answers:
            if isinstance(answer, DNSTempError):
                temp = True
            elif isinstance(answer, BaseException):
                raise answer
            else:
                addresses.extend(answer)
        return addresses, temp

    @staticmethod
    def _judge(results: list[tuple[list[str], bool]]) -> str:
        """ok (some valid address), temp, invalid (only bad addresses) or none."""
        addresses = [a for found, _ in results for a in found]
        if any(is_valid_ip(a) for a in addresses):
            return "ok"
        if any(temp for _, temp in results):
            return "temp"
        return "invalid" if addresses else "none"
