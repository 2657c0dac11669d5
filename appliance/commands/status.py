"""`appliance status`: services, queue, disk, certificate; exit 1 when something is wrong."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from appliance import status

    s = status.collect()
    sys.stdout.write(status.format_status(s))
    return 0 if s.healthy else 1
