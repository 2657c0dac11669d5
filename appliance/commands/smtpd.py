"""`appliance smtpd smtp|smtps|submission`: one SMTP daemon (supervisord runs each)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from appliance.smtpd.main import main

    return main(args.daemon)
