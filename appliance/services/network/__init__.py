"""The container's network interface: its MTU, set by `appliance apply` (needs NET_ADMIN).

Not a daemon's file: this JSON records what was asked, so a change is seen like any
other and `apply` sets the interface. `appliance run` sets it again at every start, as
a new container gets a new interface. The TCP MSS clamp follows the MTU in smtpd.json.
"""

from __future__ import annotations

import json
import logging

from appliance.config import Config
from appliance.services.base import Change, RenderedFile, Runner, Service

log = logging.getLogger("appliance.apply")

STATE = "/etc/appliance/network.json"


def settings(config: Config) -> dict:
    net = config.data["network"]
    return {"interface": net["interface"], "mtu": net["mtu"]}


def render(config: Config) -> list[RenderedFile]:
    return [RenderedFile(STATE, json.dumps(settings(config), sort_keys=True) + "\n")]


class Network(Service):
    name = "network"

    render = staticmethod(render)

    def reload(self, change: Change, run: Runner) -> list[str]:
        from appliance.services.network.interfaces import NetworkError, apply_mtu

        try:
            said = apply_mtu(change.config)
        except NetworkError as e:  # the MSS clamp in smtpd.json applies anyway
            log.error("%s", e)
            return [f"network: {e}"]
        return [f"network: {said}"] if said else []

    def warnings(self, config: Config) -> list[str]:
        from appliance.services.network.interfaces import forwarder_warning

        warning = forwarder_warning(config.data["network"]["dns_forwarders"], config)
        return [warning] if warning else []

    def starting(self, config: Config) -> None:
        """A new container has a new interface: set [network] mtu on it at every start."""
        from appliance.services.network.interfaces import (
            NetworkError,
            apply_mtu,
            remember_given_mtu,
        )

        remember_given_mtu(config.data["network"]["interface"])
        try:
            if said := apply_mtu(config):
                log.info("%s", said)
        except NetworkError as e:
            log.error("%s", e)
