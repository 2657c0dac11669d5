"""uribl: look up the domains of links in the message body (SME URIBL, UBLList).

After the final dot, the text/plain and text/html parts (quoted-printable and base64
decoded, HTML entities undone) are scanned for http(s)/ftp URLs, `www.` host names and
the targets of href attributes, bare domains included. Each host is reduced to its
registrable domain with the public suffix list (www.a.example.co.uk -> example.co.uk);
links to an IPv4 address are looked up reversed. Our own domains are never looked up.

Up to `max_lookups` names are looked up as `<name>.<zone>` (A) in every zone at once,
each once per message. A zone given as `zone:8-16-64-128` is a combined list: a hit
counts only if the last octet of the answer has one of those bits. For a plain zone any
127.x answer counts except 127.0.0.1 and 127.255.255.x, the lists' "query refused"
codes. `action` deny refuses the message with a 550; add-header adds an X-URIBL header
per listed domain and lets it through. A zone that times out is skipped: never a 5xx.
Authenticated clients and whitelisted hosts and senders are not checked; SME runs this
for its local networks too.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import re
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from functools import cache, cached_property
from urllib.parse import unquote

from publicsuffixlist import PublicSuffixList

from appliance.config.plugin_rules import parse_mask, parse_zones
from appliance.smtpd import replies
from appliance.smtpd.dns import DNSTempError, reverse_ip
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins._dnslist import ascii_domain, classify
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings

ACTIONS = ("deny", "add-header")
MAX_SCAN = 2_000_000  # characters of decoded text scanned per message

# scheme://[user@]host  -- the host ends at / ? # : or anything that cannot be in a URL
_URL = re.compile(r"(?i)\b(?:https?|ftps?)://(?:[^\s/?#@<>\"']*@)?([^\s/?#:<>\"'\\]+)")
_WWW = re.compile(r"(?i)(?<![\w.@/-])(www\d{0,3}\.[^\s/?#:<>\"'\\,;()]+)")
_HREF = re.compile(r"(?i)\bhref\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+))")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")
_TRAILING = ".-_"
_HOST_CHARS = re.compile(r"[\w.-]*")  # a host name ends at the first other character


@cache
def _psl() -> PublicSuffixList:
    # accept_unknown=False: "page.html" or "notes.txt" are not domains
    return PublicSuffixList(accept_unknown=False)


def _text_parts(msg: EmailMessage) -> Iterator[tuple[str, str]]:
    """(subtype, decoded text) of every text/plain and text/html part."""
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        subtype = part.get_content_subtype()
        if subtype not in ("plain", "html"):
            continue
        try:
            text = part.get_content()
        except Exception:  # unknown charset, broken encoding: scan what decodes
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        if isinstance(text, str):
            yield subtype, text


def _href_host(value: str) -> str:
    value = value.strip()
    if value.startswith("//"):
        value = value[2:]
    elif _SCHEME.match(value.lower()):
        scheme = value.split(":", 1)[0].lower()
        if scheme not in ("http", "https", "ftp", "ftps"):
            return ""  # mailto:, tel:, javascript:, cid:
        value = value.split(":", 1)[1].lstrip("/")
    elif value.startswith(("/", "#", "?", ".")):
        return ""  # a relative link
    host = re.split(r"[/?#\\\s]", value, maxsplit=1)[0]
    return host.rsplit("@", 1)[-1].split(":", 1)[0]


def extract_hosts(msg: EmailMessage) -> list[str]:
    """Host names and addresses linked from the message text, in order of appearance."""
    hosts: list[str] = []
    budget = MAX_SCAN
    for subtype, text in _text_parts(msg):
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text)
        if subtype == "html":
            text = html.unescape(text)  # &#46; and friends hide dots from scanners
            hosts.extend(_href_host(next(g for g in m.groups() if g is not None))
                         for m in _HREF.finditer(text))
        hosts.extend(m.group(1) for m in _URL.finditer(text))
        hosts.extend(m.group(1) for m in _WWW.finditer(text))
    return hosts


def _lookup_name(host: str) -> tuple[str, str] | None:
    """(shown name, name to prepend to the zone) for a linked host, or None to skip it."""
    chars = _HOST_CHARS.match(unquote(host).strip().strip("[]"))
    assert chars is not None  # [\w.-]* matches at the start of every string
    host = chars.group().rstrip(_TRAILING)
    if not host:
        return None
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if addr.version != 4 or not addr.is_global:
            return None
        return host, reverse_ip(host)
    domain = ascii_domain(host)
    if domain is None:
        return None
    registrable = _psl().privatesuffix(domain)
    return (registrable, registrable) if registrable else None


class Plugin(BasePlugin):
    name = "uribl"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.uribl
        self.enabled = config.enabled
        self.zones = [(zone, parse_mask(extra)) for zone, extra in parse_zones(config.zones)]
        self.action = config.action
        self.max_lookups = config.max_lookups
        self.local_domains = [d.lower() for d in settings.local_domains]

    @cached_property
    def own_domains(self) -> frozenset[str]:
        """Our domains and their registrable domains: links to them are not looked up."""
        own = set(self.local_domains)
        own.update(r for d in self.local_domains if (r := _psl().privatesuffix(d)))
        return frozenset(own)

    def names(self, hosts: Iterable[str]) -> list[tuple[str, str]]:
        """Distinct (shown, query) names, our own domains left out, at most max_lookups."""
        out: dict[str, str] = {}
        for host in hosts:
            found = _lookup_name(host)
            if found is None or found[0] in self.own_domains or found[0] in out:
                continue
            out[found[0]] = found[1]
            if len(out) >= self.max_lookups:
                break
        return list(out.items())

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if not self.enabled or not self.zones:
            return None
        if conn.authenticated or conn.whitelisted or txn.whitelisted:
            return None
        msg = await txn.parsed()
        names = await asyncio.to_thread(lambda: self.names(extract_hosts(msg)))
        if not names:
            return None
        checks = [(shown, query, zone, mask) for shown, query in names
                  for zone, mask in self.zones]
        hits = await asyncio.gather(*(self._listed(query, zone, mask)
                                      for _, query, zone, mask in checks))
        listed: dict[str, list[str]] = {}
        for (shown, _, zone, _), hit in zip(checks, hits, strict=True):
            if hit:
                listed.setdefault(shown, []).append(zone)
        txn.notes["uribl"] = listed
        if not listed:
            self.log.info("pass, %d link domains not listed", len(names))
            return None
        conn.karma -= 1
        self.log.info("fail, %s (action %s)", "; ".join(
            f"{d} listed by {', '.join(z)}" for d, z in listed.items()), self.action)
        if self.action == "deny":
            domain, zones = next(iter(listed.items()))
            return deny(replies.BLOCKED_LINK.format(domain=domain, zone=zones[0]))
        for domain, zones in reversed(listed.items()):
            txn.prepend_header("X-URIBL", f"{domain} listed by {', '.join(zones)}")
        return None

    async def _listed(self, query: str, zone: str, mask: int) -> bool:
        try:
            answers = await self.ctx.resolver.a(f"{query}.{zone}")
        except DNSTempError as e:
            self.log.info("skip %s for %s, lookup failed: %s", zone, query, e)
            return False
        listed, errors = classify(answers, domain_list=True)
        if errors:
            self.log.error("%s refused our query for %s (answer %s): check the "
                           "resolver or the list's terms", zone, query, ", ".join(errors))
        if mask:
            return any(int(a.rsplit(".", 1)[1]) & mask for a in listed)
        return bool(listed)
