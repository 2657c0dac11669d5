"""relay: who may relay without AUTH, IPv4 and IPv6 alike."""

from __future__ import annotations

import copy

import pytest


@pytest.mark.parametrize(("ip", "relays"), [
    ("::1", True),  # loopback is in local_networks by default
    ("127.0.0.1", True),
    ("::ffff:127.0.0.1", True),  # IPv4-mapped, as a dual-stack socket shows it
    ("2001:db8:5:77::9", True),
    ("2001:db8:5:78::1", False),  # relay_clients' /64 only
    ("2001:db8:5:1::10", False),  # norelay_clients inside local_networks
    ("2001:db8:6::1", False),
    ("198.51.100.7", False),
])
async def test_ipv6_local_networks_and_relay_clients(make_plugin, conn, base_settings, ip,
                                                      relays):
    settings = copy.deepcopy(base_settings)
    settings["local_networks"] = [*settings["local_networks"], "2001:db8:5::/60"]
    plugin = make_plugin("relay", settings=settings, relay_clients=["2001:db8:5:77::/64"],
                         norelay_clients=["2001:db8:5:1::/64"])
    c = conn(ip=ip)
    await plugin.hook_connect(c)
    assert c.relay_client is relays
