"""whitelists: exemptions from the spam checks (qpsmtpd whitelist: whitelisthosts,
whitelisthelo, whitelistsenders).

- `hosts` (IPs, CIDR networks): the connection is whitelisted (`conn.whitelisted`), so
  every later spam check skips it. It is not a relay permission: that is the relay
  plugin's business.
- `helo` (host names, `*` `?` wildcards): only the HELO checks are skipped, as in
  qpsmtpd. A HELO name is whatever the client chooses to say, so it must not buy a pass
  from the DNS lists or SPF; the helo plugin honours the connection note `whitelisthelo`.
- `senders` (user@domain, @domain, or a bare domain as in qpsmtpd's file): the
  transaction is whitelisted (`txn.whitelisted`). The null sender never is.

Runs first in the chain and never decides anything itself: always DECLINED.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from appliance.smtpd.address import AddressPatterns
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.peers import LocalNetworks
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.settings import Settings


def name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """Host names, where `*` is any run of characters and `?` one, as one regex to
    fullmatch against a lower-cased name without its final dot."""
    parts = [re.escape(n.strip().lower().rstrip(".")).replace(r"\*", ".*").replace(r"\?", ".")
             for n in names if n.strip()]
    return re.compile("|".join(parts)) if parts else None


class Plugin(BasePlugin):
    name = "whitelists"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        try:
            self.hosts = LocalNetworks(settings.plugin_settings.whitelists.hosts)
        except ValueError as e:
            raise PluginError(f"whitelists: bad host or network: {e}") from None
        self.helos = name_pattern(settings.plugin_settings.whitelists.helo)
        self.senders = AddressPatterns(s if "@" in s else "@" + s.strip()
                                       for s in settings.plugin_settings.whitelists.senders
                                       if s.strip())

    def helo_listed(self, helo: str) -> bool:
        return self.helos is not None and bool(self.helos.fullmatch(helo.lower().rstrip(".")))

    async def hook_connect(self, conn: Connection) -> None:
        if conn.remote_ip in self.hosts:
            conn.whitelisted = True
            self.log.info("%s: whitelisted host", conn.remote_ip)

    async def hook_helo(self, conn: Connection, host: str) -> None:
        # Re-evaluated on every HELO/EHLO: the name after STARTTLS is the one that counts.
        conn.helo_whitelisted = self.helo_listed(host)
        if conn.helo_whitelisted:
            self.log.info("%s: whitelisted HELO %s", conn.remote_ip, host)

    async def hook_mail(self, conn: Connection, txn: Transaction, sender: str) -> None:
        if txn.sender and self.senders.matches(txn.sender):
            txn.whitelisted = True
            self.log.info("%s: whitelisted sender <%s>", conn.remote_ip, txn.sender)
