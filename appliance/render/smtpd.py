"""Our SMTP daemons (25/465/587): the settings they need, resolved into one JSON file.

The daemons never parse appliance.toml: they read this file at start and on SIGHUP, so
a bad toml can never reach a running daemon.
"""

from __future__ import annotations

import json

from appliance import paths
from appliance.config import Config
from appliance.render.files import RenderedFile
from appliance.render.postfix import HANDOFF_ADDRESS

SERVICE = "smtpd"
RUN_AS = "qpsmtpd"


def settings(config: Config) -> dict:
    d = config.data
    s = d["smtpd"]
    return {
        "hostname": config.fqdn,
        "greeting": s["greeting"] or "ESMTP",
        "timeout": s["timeout"],
        "max_message_size": s["max_message_size"],
        "handoff": {
            "host": HANDOFF_ADDRESS[0],
            "port": HANDOFF_ADDRESS[1],
            "timeout": s["handoff_timeout"],
        },
        "plugins": list(s["plugins"]),
        "local_networks": list(d["network"]["local_networks"]),
        "local_domains": config.local_domains,
        "users": {name: u["password"] for name, u in sorted(d["users"].items())},
        "tls": {"cert": str(paths.TLS_CERT), "key": str(paths.TLS_KEY)},
        "run_as": RUN_AS,
        "daemons": {name: dict(s[name]) for name in ("smtp", "smtps", "submission")},
    }


def render(config: Config) -> list[RenderedFile]:
    text = json.dumps(settings(config), indent=2, sort_keys=True) + "\n"
    return [RenderedFile(paths.SMTPD_JSON, text, mode=0o640, group=RUN_AS)]
