"""relay: who may relay without AUTH (SME relayclients, norelayclients).

Relay clients are network.local_networks plus `relay_clients`, minus `norelay_clients`.
The Docker bridge subnet is never implied: behind published ports every internet client
can appear to come from the bridge gateway, so trusting it would make an open relay.
Authenticated users may always relay; rcpt_ok makes the decision at RCPT.
"""

from __future__ import annotations

from appliance.smtpd.hooks import Connection
from appliance.smtpd.peers import LocalNetworks
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.settings import Settings


class Plugin(BasePlugin):
    name = "relay"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        try:
            self.allowed = LocalNetworks(
                settings.local_networks + settings.plugin_settings.relay.relay_clients)
            self.refused = LocalNetworks(settings.plugin_settings.relay.norelay_clients)
        except ValueError as e:
            raise PluginError(f"relay: bad network: {e}") from None

    def is_relay_client(self, ip: str) -> bool:
        return ip in self.allowed and ip not in self.refused

    async def hook_connect(self, conn: Connection) -> None:
        conn.relay_client = self.is_relay_client(conn.remote_ip)
