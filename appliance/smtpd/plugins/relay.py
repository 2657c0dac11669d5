"""relay: marks clients from the local networks as allowed to relay without AUTH.

Local networks come from `network.local_networks` (loopback only by default). The
Docker bridge subnet is never implied: behind published ports every internet client can
appear to come from the bridge gateway, so trusting it would make an open relay.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from appliance.smtpd.hooks import Connection
from appliance.smtpd.plugins import BasePlugin, PluginError


class Plugin(BasePlugin):
    name = "relay"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        try:
            self.networks = [
                ipaddress.ip_network(n, strict=False) for n in settings["local_networks"]
            ]
        except ValueError as e:
            raise PluginError(f"relay: bad local network: {e}") from None

    def is_local(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)

    async def hook_connect(self, conn: Connection) -> None:
        conn.relay_client = self.is_local(conn.remote_ip)
