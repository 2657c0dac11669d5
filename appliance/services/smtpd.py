"""Our SMTP daemons (25/465/587): the settings they need, resolved into one JSON file.

The daemons never parse appliance.toml: they read this file at start and on SIGHUP, so
a bad toml can never reach a running daemon.
"""

from __future__ import annotations

import json

from appliance import paths
from appliance.accounts import (
    addresses,
    internal_addresses,
    recipient_delimiters,
    unowned_addresses,
)
from appliance.config import Config
from appliance.config.schema import PLUGIN_SECTIONS
from appliance.services.base import RenderedFile
from appliance.services.network import mss
from appliance.services.postfix import HANDOFF_ADDRESS, queue_minfree
from appliance.services.spamassassin import reject_level, tag_level
from appliance.services.unbound import LISTEN as UNBOUND_LISTEN

SERVICE = "smtpd"
RUN_AS = "qpsmtpd"


def plugin_settings(config: Config) -> dict[str, dict]:
    out = {sec.path.split(".", 1)[1]: dict(config.get(sec.path)) for sec in PLUGIN_SECTIONS}
    spam = dict(config.data["spamassassin"])
    # SME's wbl.global: White exempts the sender from the spam checks, Black refuses it.
    out["whitelists"]["senders"] = out["whitelists"]["senders"] + spam["whitelist"]
    out["badmailfrom"]["patterns"] = out["badmailfrom"]["patterns"] + spam["blacklist"]
    spam.update(tag_level=tag_level(spam), reject_level=reject_level(spam),
                socket=str(paths.SPAMD_SOCKET))
    out["spamassassin"] = spam
    out["clamav"] = dict(config.data["clamav"], socket=str(paths.CLAMD_SOCKET))
    # the delimiters in effect, as Postfix and Dovecot get them (check_goodrcptto,
    # badrcptto and sender_login read this one value)
    out["check_goodrcptto"]["extension_separator"] = recipient_delimiters(config)
    return out


def settings(config: Config) -> dict:
    d = config.data
    s = d["smtpd"]
    return {
        "hostname": config.fqdn,
        "greeting": s["greeting"] or "ESMTP",
        "timeout": s["timeout"],
        "min_data_rate": s["min_data_rate"],
        "max_message_size": s["max_message_size"],
        "max_recipients": s["max_recipients"],
        "handoff": {
            "host": HANDOFF_ADDRESS[0],
            "port": HANDOFF_ADDRESS[1],
            "timeout": s["handoff_timeout"],
        },
        "dns": {"nameservers": [UNBOUND_LISTEN], "timeout": s["dns_timeout"]},
        "state_dir": str(paths.SMTPD_STATE),
        # MAIL gets 452 4.3.1 when this file system is short of space (as Postfix does)
        "queue_dir": str(paths.POSTFIX_QUEUE),
        "queue_min_free": queue_minfree(config),
        "log_level": s["log_level"],
        "plugin_settings": plugin_settings(config),
        "local_networks": list(d["network"]["local_networks"]),
        "local_domains": config.local_domains,
        "primary_domain": d["system"]["domain"],
        "delegated_domains": config.delegated_domains,
        "addresses": addresses(config),
        "internal_addresses": internal_addresses(config),
        # delivered to users, but no one's to send as (sender_login: only by send_as)
        "unowned_addresses": unowned_addresses(config),
        "send_as": {name: list(u["send_as"]) for name, u in sorted(d["users"].items())
                    if u["send_as"]},
        "domains": {name: dict(e) for name, e in sorted(d["domains"].items())},
        "users": {name: u["password"] for name, u in sorted(d["users"].items())},
        # apply's checked copy of tls/cert.pem and key.pem, which the daemons can re-read
        "tls": {"cert": str(paths.SMTPD_TLS / "cert.pem"),
                "key": str(paths.SMTPD_TLS / "key.pem"), "report_dir": str(paths.SMTPD_TLS)},
        "dkim_keys": str(paths.DKIM_KEYS),
        "run_as": RUN_AS,
        "daemons": {name: dict(s[name], tcp_maxseg=mss(config),
                               tls_ciphers=s[name]["tls_ciphers"] or d["tls"]["ciphers"])
                    for name in ("smtp", "smtps", "submission")},
        "terse_log": str(paths.TERSE_LOG_DIR),
    }


def render(config: Config) -> list[RenderedFile]:
    text = json.dumps(settings(config), indent=2, sort_keys=True) + "\n"
    return [RenderedFile(paths.SMTPD_JSON, text, mode=0o640, group=RUN_AS)]
