"""`appliance clamd`: wait for virus signatures, then exec clamd (supervisord runs it)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from appliance.services.clamav.signatures import run_clamd

    return run_clamd()
