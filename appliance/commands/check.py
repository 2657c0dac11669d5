"""`appliance check`: validate appliance.toml and change nothing (a bad value: exit 2)."""

from __future__ import annotations

import argparse

from appliance import paths
from appliance.commands import base


def run(args: argparse.Namespace) -> int:
    base.load_config()
    print(f"{paths.CONFIG}: OK")
    return 0
