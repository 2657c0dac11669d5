"""`appliance print-dns [DOMAIN]`: the records to publish for one of our domains (SME's
qpsmtpd-print-dns): MX, A/AAAA, DKIM, SPF, DMARC, MTA-STS, TLS-RPT, the autoconfig
names and the SRV records of each mail service. They come from appliance/dns_records.py,
which `appliance dns check` compares the published ones with."""

from __future__ import annotations

import argparse
import sys

from appliance import paths
from appliance.commands.dns import DomainError, records_for
from appliance.config import ConfigError
from appliance.dkim_keys import key_for

INTRO = """\
; Sample DNS records to publish in the public zone of {domain}.
; Replace an address placeholder with the address the internet reaches this server at
; (or set network.public_addresses); the DKIM record can be copied as is. The DMARC and
; TLS reports go to dmarc-feedback@{domain}, delivered to the admin (system.admin: {admin}).
; `appliance dns check {domain}` says which of them the world sees.
"""


def run(args: argparse.Namespace) -> int:
    """The records for args.domain (the primary domain if omitted); exit 2 when it is not
    one of ours or appliance.toml is broken."""
    try:
        config, settings, domain, records = records_for(args.domain)
    except (ConfigError, DomainError) as e:
        print(f"appliance print-dns: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(INTRO.format(domain=domain, admin=config.admin or "no user yet"))
    if domain in settings["delegated_domains"]:
        server = settings["delegated_domains"][domain]
        sys.stdout.write(f"; {domain}'s mail goes on to {server}: dmarc-feedback@ must "
                         "exist there.\n")
    directory = settings.get("dkim_keys", str(paths.DKIM_KEYS))
    if key_for(directory, domain) is None:
        sys.stdout.write(f"; No DKIM key in {directory} yet: it is created when the "
                         "appliance starts.\n")
    sys.stdout.write("\n" + "\n".join(r.zone_line() for r in records) + "\n")
    return 0
