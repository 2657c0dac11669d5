"""`appliance dmarc-report [...]`: send the DMARC aggregate reports now (the scheduler does
it daily); the reporting itself, with its own options, is
appliance/smtpd/dmarc/reports.py."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from appliance.smtpd.dmarc.reports import main

    return main(args.rest)
