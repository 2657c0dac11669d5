"""Our SMTP daemons (25/465/587): the settings they need, resolved into one JSON file.

The daemons never parse appliance.toml: they read this file at start and on SIGHUP, so
a bad toml can never reach a running daemon.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pwd
import time
from pathlib import Path
from typing import Any

from appliance import limits, paths
from appliance.accounts import (
    addresses,
    internal_addresses,
    recipient_delimiters,
    unowned_addresses,
)
from appliance.config import Config, app_passwords
from appliance.config.schema import PLUGIN_SECTIONS, SMTP_DAEMONS
from appliance.security.bans import rules_from_config, rules_to_dict
from appliance.services.base import (
    Change,
    Health,
    Program,
    RenderedFile,
    Runner,
    Service,
    Staged,
    installed_command,
    said,
    supervisorctl,
)
from appliance.services.spamassassin import reject_level, tag_level
from appliance.services.unbound import LISTEN as UNBOUND_LISTEN
from appliance.smtpd.settings import (
    ClamavSettings,
    PluginSettings,
    Settings,
    SpamassassinSettings,
)
from appliance.smtpd.settings import from_dict as settings_from_dict
from appliance.tls import CertificatePair

RUN_AS = "qpsmtpd"

log = logging.getLogger("appliance.run")


def _fields_of(section: type, values: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline reads of a service's section (spamd's own settings stay out)."""
    return {f.name: values[f.name] for f in dataclasses.fields(section)}


def _plugin_sections(config: Config) -> dict[str, dict[str, Any]]:
    out = {sec.path.split(".", 1)[1]: dict(config.get(sec.path)) for sec in PLUGIN_SECTIONS}
    spam = dict(config.data["spamassassin"])
    # SME's wbl.global: White exempts the sender from the spam checks, Black refuses it.
    out["whitelists"]["senders"] = out["whitelists"]["senders"] + spam["whitelist"]
    out["badmailfrom"]["patterns"] = out["badmailfrom"]["patterns"] + spam["blacklist"]
    spam.update(tag_level=tag_level(spam), reject_level=reject_level(spam),
                socket=str(paths.SPAMD_SOCKET))
    out["spamassassin"] = _fields_of(SpamassassinSettings, spam)
    out["clamav"] = _fields_of(ClamavSettings, dict(config.data["clamav"],
                                                    socket=str(paths.CLAMD_SOCKET)))
    # the delimiters in effect, as Postfix and Dovecot get them (check_goodrcptto,
    # badrcptto and sender_login read this one value)
    out["check_goodrcptto"]["extension_separator"] = recipient_delimiters(config)
    return out


def plugin_settings(config: Config) -> PluginSettings:
    """Every plugin's settings, typed, from the validated CONFIG."""
    return settings(config).plugin_settings


def settings(config: Config) -> Settings:
    """The SMTP daemons' settings from the validated CONFIG, through the daemons' own
    typed constructor (so nothing is written that a daemon would refuse)."""
    d = config.data
    s = d["smtpd"]
    return settings_from_dict({
        "hostname": config.fqdn,
        "greeting": s["greeting"] or "ESMTP",
        "timeout": s["timeout"],
        "min_data_rate": s["min_data_rate"],
        "max_message_size": s["max_message_size"],
        "max_recipients": s["max_recipients"],
        "handoff": {
            "host": paths.HANDOFF_ADDRESS[0],
            "port": paths.HANDOFF_ADDRESS[1],
            "timeout": s["handoff_timeout"],
        },
        "dns": {"nameservers": [UNBOUND_LISTEN], "timeout": s["dns_timeout"]},
        "state_dir": str(paths.SMTPD_STATE),
        # MAIL gets 452 4.3.1 when this file system is short of space (as Postfix does)
        "queue_dir": str(paths.POSTFIX_QUEUE),
        "queue_min_free": limits.queue_minfree(s["max_message_size"]),
        "log_level": s["log_level"],
        "plugin_settings": _plugin_sections(config),
        "local_networks": list(d["network"]["local_networks"]),
        "trusted_proxies": list(d["network"]["trusted_proxies"]),
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
        "app_passwords": {name: {p.name: p.hash for p in app_passwords.entries(
            u["app_passwords"])} for name, u in sorted(d["users"].items())
            if u["password"] and u["app_passwords"]},
        # apply's checked copy of tls/cert.pem and key.pem, which the daemons can re-read
        "tls": {"cert": str(paths.SMTPD_TLS / "cert.pem"),
                "key": str(paths.SMTPD_TLS / "key.pem"), "report_dir": str(paths.SMTPD_TLS)},
        "dkim_keys": str(paths.DKIM_KEYS),
        "run_as": RUN_AS,
        "daemons": {name: dict(s[name], tcp_maxseg=limits.mss(d["network"]["mtu"]),
                               tls_ciphers=s[name]["tls_ciphers"] or d["tls"]["ciphers"])
                    for name in SMTP_DAEMONS},
        "terse_log": str(paths.TERSE_LOG_DIR),
        "user_limits": {name: {
            "messages_per_hour": u["messages_per_hour"] or d["limits"]["user_messages_per_hour"],
            "recipients_per_message": (u["recipients_per_message"]
                                       or d["limits"]["user_recipients_per_message"]),
        } for name, u in sorted(d["users"].items())},
        "tarpit_count": s["tarpit_count"],
        "tarpit_delay": s["tarpit_delay"],
        "security": rules_to_dict(rules_from_config(d)),
        "bans_db": str(paths.BANS_DB),
    })


def render(config: Config) -> list[RenderedFile]:
    text = settings(config).to_json()
    return [RenderedFile(paths.SMTPD_JSON, text, mode=0o640, group=RUN_AS)]


SERVING_WAIT_S = 10.0


def program_name(daemon: str) -> str:
    """supervisord's name for one SMTP daemon."""
    return f"smtpd-{daemon}"


def not_serving(daemons: list[str], fingerprint: str, wait: float | None = None
                ) -> list[str]:
    """Those DAEMONS that have not said (in SMTPD_TLS/serving-NAME) they serve the
    certificate FINGERPRINT within WAIT (SERVING_WAIT_S) seconds of their SIGHUP."""
    folder = paths.SMTPD_TLS
    deadline = time.monotonic() + (SERVING_WAIT_S if wait is None else wait)
    pending = list(daemons)
    while pending:
        pending = [d for d in pending if _serving(folder / f"serving-{d}") != fingerprint]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return pending


def _serving(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


class Smtpd(Service):
    name = "smtpd"
    uses_certificate = True

    render = staticmethod(render)

    def check(self, staged: Staged, run: Runner) -> None:
        from appliance.config import ConfigError
        from appliance.smtpd.main import build_state  # the daemons' own loader

        for f in staged.files:
            try:
                build_state(json.loads(f.text))
            except Exception as e:
                raise ConfigError(f"smtpd refused the new settings: {e}") from None

    def install(self, change: Change, run: Runner) -> None:
        """A new certificate: the daemons' own copy, which they re-read on SIGHUP."""
        if change.certificate is None:
            return
        from appliance.config import ConfigError
        from appliance.tls import install_for_smtpd

        try:
            install_for_smtpd(change.certificate, paths.SMTPD_TLS, RUN_AS)
        except OSError as e:  # /run is the container's own: this is not the admin's doing
            raise ConfigError(f"cannot install the certificate for the SMTP daemons: {e}; "
                              "nothing was reloaded") from None

    def serves(self, certificate: CertificatePair) -> bool:
        from appliance.tls import installed_for_smtpd

        return installed_for_smtpd(certificate, paths.SMTPD_TLS)

    def reload(self, change: Change, run: Runner) -> list[str]:
        """A daemon whose own settings changed (port, TLS versions, caps: listener
        settings) is restarted; the others get SIGHUP, which re-reads the settings and
        the certificate with sessions left open. A daemon that does not say it serves a
        new certificate after its SIGHUP is restarted."""
        new = _daemons(change.files[0].text) if change.files else None
        old = _daemons(change.previous.get(paths.SMTPD_JSON))
        done, hupped = [], []
        for daemon in SMTP_DAEMONS:
            settings = new[daemon] if new is not None else None
            enabled = (settings["enabled"] if settings is not None
                       else change.config.data["smtpd"][daemon]["enabled"])
            if not enabled:
                continue
            if settings is not None and (old or {}).get(daemon) != settings:
                done.append(said(f"{program_name(daemon)}: restart",
                                 supervisorctl(run, "restart", program_name(daemon))))
            elif supervisorctl(run, "signal", "HUP", program_name(daemon)):
                hupped.append(daemon)
            else:
                done.append(said(f"{program_name(daemon)}: reload", False))
        late = set(not_serving(hupped, change.certificate.fingerprint)
                   if change.certificate is not None else ())
        for daemon in hupped:
            if daemon in late:  # its reload failed (it logged why): a restart loads it
                done.append(said(f"{program_name(daemon)}: restart (the reload kept the old "
                                 "certificate)", supervisorctl(run, "restart",
                                                                program_name(daemon))))
            else:
                done.append(f"{program_name(daemon)}: reload")
        return done

    def programs(self, config: Config) -> list[Program]:
        return [Program(program_name(daemon), f"{installed_command('appliance')} smtpd {daemon}",
                        priority=20)
                for daemon in SMTP_DAEMONS if config.data["smtpd"][daemon]["enabled"]]

    def health(self, config: Config | None) -> Health:
        """Users at or near their hourly send limit (limits.*, the send_limits plugin)."""
        if config is None:
            return Health()
        import sqlite3

        from appliance.smtpd.send_counts import counts_last_hour

        try:
            counts = counts_last_hour(paths.SMTPD_STATE, time.time())
        except sqlite3.Error as e:
            return Health(facts=[f"send limits: counts unreadable: {e}"])
        limits = settings(config).user_limits
        facts = []
        for user, sent in sorted(counts.items()):
            limit = limits[user].messages_per_hour if user in limits else 0
            if limit and sent >= 0.8 * limit:
                state = "reached: MAIL gets 451" if sent >= limit else "near"
                facts.append(f"send limit: {user} sent {sent} of {limit} this hour ({state})")
        return Health(facts=facts)

    def prepare(self) -> None:
        # The daemons' own state (karma, greylisting, DMARC records) and DKIM keys.
        qpsmtpd = pwd.getpwnam(RUN_AS)
        for folder in (paths.SMTPD_STATE, paths.DKIM_KEYS):
            folder.mkdir(exist_ok=True)
            os.chown(folder, qpsmtpd.pw_uid, qpsmtpd.pw_gid)
            os.chmod(folder, 0o750)

    def setup(self, config: Config) -> None:
        from appliance.dkim_keys import ensure_default_key

        if ensure_default_key(paths.DKIM_KEYS,
                              selector=config.data["smtpd"]["dkim_sign"]["selector"]):
            log.info("first boot: made the default DKIM key (see `appliance print-dns`)")


def _daemons(text: str | None) -> dict[str, Any] | None:
    """The per-daemon settings in a smtpd.json's text."""
    if not text:
        return None
    daemons: dict[str, Any] = json.loads(text).get("daemons", {})
    return daemons
