"""rhsbl: refuse senders whose domain is on a domain block list (SME RHSBL, SBLList).

At MAIL FROM the envelope sender's domain is looked up as `<domain>.<zone>` (A) in every
zone at once; when the domain is a subdomain its registrable domain is looked up too,
since these lists hold registered domains. Only answers in 127.0.0.0/8 count, except
127.0.0.1 and 127.255.255.x, the lists' "query refused" codes (logged). A hit is a 550
with the zone's TXT reason if it has one, or `zone:message` as configured. A zone that
times out is skipped. The null sender, address literals, trusted clients and
whitelisted senders are not checked.
"""

from __future__ import annotations

import asyncio
from functools import cache

from publicsuffixlist import PublicSuffixList

from appliance.config.plugin_rules import parse_zones
from appliance.smtpd import replies
from appliance.smtpd.address import split_address
from appliance.smtpd.dns import DNSTempError
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.plugins._dnslist import ascii_domain, classify, clean_text
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


class Plugin(BasePlugin):
    name = "rhsbl"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.rhsbl
        self.enabled = config.enabled
        self.zones = parse_zones(config.zones)

    async def hook_mail(self, conn: Connection, txn: Transaction,
                        sender: str) -> Result | None:
        if not self.enabled or not self.zones or not sender:
            return None
        if conn.trusted or txn.whitelisted:
            return None
        domain = ascii_domain(split_address(sender)[1])
        if domain is None:  # no domain, an address literal, or junk
            return None
        names = [domain]
        registrable = _psl().privatesuffix(domain)
        if registrable and registrable != domain:
            names.append(registrable)
        checks = [(name, zone, message) for zone, message in self.zones for name in names]
        reasons = await asyncio.gather(*(self._check(*c) for c in checks))
        for (name, zone, _), reason in zip(checks, reasons, strict=True):
            if reason is None:
                continue
            conn.karma -= 1
            txn.notes["rhsbl"] = zone
            self.log.info("fail, %s listed by %s", name, zone)
            return deny(replies.LISTED.format(reason=reason))
        return None

    async def _check(self, name: str, zone: str, message: str) -> str | None:
        """The refusal text if `name` is listed in `zone`, else None."""
        query = f"{name}.{zone}"
        try:
            listed, errors = classify(await self.ctx.resolver.a(query), domain_list=True)
        except DNSTempError as e:
            self.log.info("skip %s, lookup failed: %s", zone, e)
            return None
        if errors:
            self.log.error("%s refused our query for %s (answer %s): check the "
                           "resolver or the list's terms", zone, name, ", ".join(errors))
        if not listed:
            return None
        default = f"Mail from {name} refused: listed by {zone}"
        if message:
            return clean_text(message.replace("%DOMAIN%", name)) or default
        try:
            texts = await self.ctx.resolver.txt(query)
        except DNSTempError:
            texts = []
        reason = clean_text(texts[0]) if texts else ""
        return f"Mail from {name} refused: {reason}" if reason else default
