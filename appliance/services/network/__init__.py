"""The container's network interface: its MTU, set by `appliance apply` (needs NET_ADMIN).

Not a daemon's file: this JSON records what was asked, so a change is seen like any
other and `apply` sets the interface. `appliance run` sets it again at every start, as
a new container gets a new interface. The TCP MSS clamp follows the MTU in smtpd.json.
"""

from __future__ import annotations

import json

from appliance.config import Config
from appliance.services.base import RenderedFile

SERVICE = "network"
STATE = "/etc/appliance/network.json"


def mss(config: Config) -> int:
    """The TCP MSS the SMTP listeners advertise: MTU - 40 (IPv4 and TCP headers); 0: none."""
    mtu = config.data["network"]["mtu"]
    return mtu - 40 if mtu else 0


def settings(config: Config) -> dict:
    net = config.data["network"]
    return {"interface": net["interface"], "mtu": net["mtu"]}


def render(config: Config) -> list[RenderedFile]:
    return [RenderedFile(STATE, json.dumps(settings(config), sort_keys=True) + "\n")]
