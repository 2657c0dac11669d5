"""`appliance autoconfig-server`: Thunderbird's autoconfig, Outlook's autodiscover and
the Apple profile for nginx (supervisord runs it; appliance.autoconfig.server)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from appliance.autoconfig.server import main

    return main()
