"""`appliance print-dns [DOMAIN]`: the MX, A, DKIM, SPF and DMARC records to publish for
one of our domains (SME's qpsmtpd-print-dns). The records come from appliance/dkim_keys.py."""

from __future__ import annotations

import argparse
import sys

from appliance import paths
from appliance.config import ConfigError, load
from appliance.dkim_keys import dns_records, host_records, key_for

INTRO = """\
; Sample DNS records to publish in the public zone of {domain}.
; Replace the A record's placeholder with the address the internet reaches this
; server at; the DKIM record can be copied as is. The DMARC reports go to
; dmarc-feedback@{domain}, delivered to the admin (system.admin: {admin}).
"""


def run(args: argparse.Namespace) -> int:
    """The records for args.domain (the primary domain if omitted); exit 2 when it is not
    one of ours or appliance.toml is broken."""
    from appliance.services.smtpd import settings as smtpd_settings

    try:
        config = load(paths.CONFIG)
        # the daemons' settings in their JSON form, as dkim_keys reads them
        settings = smtpd_settings(config).to_dict()
    except ConfigError as e:
        print(f"appliance print-dns: {e}", file=sys.stderr)
        return 2
    domain = (args.domain or settings["primary_domain"]).lower().rstrip(".")
    if domain not in [d.lower() for d in settings["local_domains"]]:
        print(f"appliance print-dns: {domain} is not one of our domains "
              f"({', '.join(settings['local_domains'])})", file=sys.stderr)
        return 2
    directory = settings.get("dkim_keys", str(paths.DKIM_KEYS))
    records = host_records(domain, settings["hostname"]) + dns_records(domain, directory,
                                                                       settings)
    sys.stdout.write(INTRO.format(domain=domain, admin=config.admin or "no user yet"))
    if domain in settings["delegated_domains"]:
        server = settings["delegated_domains"][domain]
        sys.stdout.write(f"; {domain}'s mail goes on to {server}: dmarc-feedback@ must "
                         "exist there.\n")
    if key_for(directory, domain) is None:
        sys.stdout.write(f"; No DKIM key in {directory} yet: it is created when the "
                         "appliance starts.\n")
    sys.stdout.write("\n" + "\n".join(records) + "\n")
    return 0
