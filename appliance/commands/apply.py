"""`appliance apply [--dry-run]`: make the running services match appliance.toml."""

from __future__ import annotations

import argparse
import sys

from appliance.commands import base


def run(args: argparse.Namespace) -> int:
    from appliance.apply import apply

    plan = apply(base.load_config(), dry_run=args.dry_run)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        sys.stdout.write("".join(plan.diffs) or "nothing would change\n")
    else:
        print("applied: " + (", ".join(plan.services) or "nothing changed"))
        for line in plan.reloaded:
            print(f"  {line}")
    return 0
