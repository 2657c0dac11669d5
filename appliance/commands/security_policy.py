"""`appliance security-policy`: Dovecot's auth policy server, bans for IMAP, POP3,
ManageSieve and the webmail (supervisord runs it; appliance.security.policy)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from appliance.security.policy import main

    return main()
