"""loadcheck: defers mail from outside while the machine is overloaded (SME MaxLoad,
qpsmtpd loadcheck).

When the 1-minute load average is above `max_load`, new connections get 451 before the
greeting: senders retry later, and the load they would add (DNS lists, content checks)
goes to a calmer moment. Trusted clients (relay clients, whitelisted hosts) are still
served; the local networks do not run this plugin at all. The load average is the
host's (containers share the kernel's), which is the machine we care about. A system
without one (os.getloadavg fails) is never deferred.
"""

from __future__ import annotations

import os
from typing import Any

from appliance.smtpd.hooks import Connection
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, denysoft

REPLY = "451 4.3.2 Server busy, try again later"


class Plugin(BasePlugin):
    name = "loadcheck"
    getloadavg = staticmethod(os.getloadavg)  # tests replace it

    def __init__(self, settings: dict[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.max_load = self.config.get("max_load", 7)
        if type(self.max_load) not in (int, float) or self.max_load <= 0:
            raise PluginError("loadcheck: max_load must be a positive number")

    async def hook_connect(self, conn: Connection) -> Result | None:
        if conn.trusted:
            return None
        try:
            load = self.getloadavg()[0]
        except OSError:
            return None
        if load > self.max_load:
            self.log.info("%s: deferred, load %.2f > %s", conn.remote_ip, load, self.max_load)
            return denysoft(REPLY)
        return None
