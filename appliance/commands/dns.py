"""`appliance dns check [DOMAIN]`: each record print-dns asks for, looked up through
the appliance's resolver: one line per record (ok, missing or wrong, with the expected
value), exit 1 when any is missing or wrong. The checks are appliance/dns_check.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from appliance import dns_check, paths
from appliance.config import ConfigError, load
from appliance.dns_records import Record, expected

if TYPE_CHECKING:
    from appliance.config import Config


class DomainError(ValueError):
    """Not one of our domains."""


def records_for(domain: str | None) -> tuple[Config, Mapping[str, Any], str, list[Record]]:
    """(config, the SMTP daemons' settings, DOMAIN, its records); DOMAIN defaults to the
    primary one. ConfigError or DomainError."""
    from appliance.services.smtpd import settings as smtpd_settings

    config = load(paths.CONFIG)
    settings = smtpd_settings(config).to_dict()  # the daemons' view: host name, selector
    name = (domain or settings["primary_domain"]).lower().rstrip(".")
    if name not in [d.lower() for d in settings["local_domains"]]:
        raise DomainError(f"{name} is not one of our domains "
                          f"({', '.join(settings['local_domains'])})")
    directory = settings.get("dkim_keys", str(paths.DKIM_KEYS))
    return config, settings, name, expected(name, config, settings, directory)


def run(args: argparse.Namespace) -> int:
    """`appliance dns check [DOMAIN | --all]`: 0 all ok, 1 something missing or wrong, 2
    not one of our domains or a broken appliance.toml."""
    try:
        if args.all:
            from appliance.services.smtpd import settings as smtpd_settings

            domains = list(smtpd_settings(load(paths.CONFIG)).to_dict()["local_domains"])
        else:
            domains = [args.domain]
        checked = [records_for(d) for d in domains]
    except (ConfigError, DomainError) as e:
        print(f"appliance dns check: {e}", file=sys.stderr)
        return 2
    lookup = dns_check.Lookup(dns_check.resolver())
    failing = False
    for config, _settings, domain, records in checked:
        findings = dns_check.check(domain, records, config, lookup)
        for finding in findings:
            print(finding.line())
        print(f"{domain}: {dns_check.summary(findings)}")
        failing |= any(f.state != dns_check.OK for f in findings)
        try:
            dns_check.save(domain, findings, [d.lower() for d in config.local_domains])
        except OSError as e:  # e.g. a user who cannot write the volume: said, not fatal
            print(f"appliance dns check: result not kept: {e}", file=sys.stderr)
    return 1 if failing else 0
