"""`appliance fetchmail`: retrieve mail from the secondary server now (the scheduler runs
it at the fetchmail.freq_* intervals)."""

from __future__ import annotations

import argparse

from appliance.commands import base


def run(args: argparse.Namespace) -> int:
    from appliance.services.fetchmail import poll

    return poll.run(base.load_config())
