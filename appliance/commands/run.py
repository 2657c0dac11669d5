"""`appliance run`: the container's entrypoint, the boot sequence (appliance/boot.py)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from appliance.boot import run as boot

    return boot()
