"""dnsbl: refuse clients whose address is on a DNS block list (SME DNSBL, RBLList,
dnsbl_allow).

At connect, the client's reversed address (IPv6 by nibbles) is looked up in every zone
at once. A zone given as `zone` is a TXT list: on a hit its TXT record is the reason.
`zone:message` is an A-record list with our own reason, `%IP%` standing for the client.
Only answers in 127.0.0.0/8 count; 127.255.255.x is the list refusing our query (logged,
not a listing). A zone that times out is skipped, so an unreachable list never refuses
mail. Trusted clients, network.local_networks and `allow` are never looked up. The
refusal follows `reject` (SME's default, naughty, lets the naughty plugin refuse it at
MAIL so the log shows the sender); the zone that listed the client is noted in
conn.notes["dnsbl"].
"""

from __future__ import annotations

import asyncio
import ipaddress

from appliance.config.plugin_rules import parse_zones
from appliance.smtpd import replies
from appliance.smtpd.dns import DNSTempError, reverse_ip
from appliance.smtpd.hooks import Connection
from appliance.smtpd.peers import LocalNetworks
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.plugins._dnslist import classify, clean_text
from appliance.smtpd.results import Result, refuse
from appliance.smtpd.settings import Settings

REJECT_MODES = ("deny", "naughty", "off")


class Plugin(BasePlugin):
    name = "dnsbl"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.dnsbl
        self.enabled = config.enabled
        self.zones = parse_zones(config.zones)
        self.reject = config.reject
        try:
            self.allow = LocalNetworks(config.allow)
            self.local = LocalNetworks(settings.local_networks)
        except (ValueError, TypeError) as e:
            raise PluginError(f"dnsbl: bad network in allow or local_networks: {e}") from None

    async def hook_connect(self, conn: Connection) -> Result | None:
        if not self.enabled or not self.zones:
            return None
        ip = conn.remote_ip
        if conn.trusted or ip in self.local:
            return None
        if ip in self.allow:
            self.log.info("skip, %s is in dnsbl allow", ip)
            return None
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return None
        reversed_ip = reverse_ip(ip)
        hits = await asyncio.gather(*(self._check(ip, reversed_ip, zone, message)
                                      for zone, message in self.zones))
        listed = [(zone, reason) for zone, reason in hits if reason]
        if not listed:
            return None
        zone, reason = listed[0]
        reply = replies.LISTED.format(reason=reason)
        conn.notes["dnsbl"] = zone
        conn.notes["dnsbl_reply"] = reply
        if self.reject != "naughty":  # the pipeline counts a NAUGHTY verdict itself
            conn.karma -= 1
        self.log.info("fail, %s listed by %s (reject %s)", ip,
                      ", ".join(z for z, _ in listed), self.reject)
        return refuse(self.reject, reply)

    async def _check(self, ip: str, reversed_ip: str, zone: str,
                     message: str) -> tuple[str, str]:
        """(zone, reason) where reason is "" when the client is not listed there."""
        name = f"{reversed_ip}.{zone}"
        try:
            listed, errors = classify(await self.ctx.resolver.a(name))
        except DNSTempError as e:
            self.log.info("skip %s, lookup failed: %s", zone, e)
            return zone, ""
        if errors:
            self.log.error("%s refused our query for %s (answer %s): check the "
                           "resolver or the list's terms", zone, ip, ", ".join(errors))
        if not listed:
            return zone, ""
        if message:
            return zone, clean_text(message.replace("%IP%", ip)) or f"Blocked by {zone}"
        try:
            texts = await self.ctx.resolver.txt(name)
        except DNSTempError:
            texts = []
        reason = clean_text(texts[0]) if texts else ""
        return zone, reason or f"Blocked by {zone}"
