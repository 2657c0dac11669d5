"""`appliance spam learn|expire-junkmail|stats`: the Bayes learner's jobs now (the
scheduler runs learn and expire-junkmail)."""

from __future__ import annotations

import argparse

from appliance.commands import base


def run(args: argparse.Namespace) -> int:
    from appliance.services.spamassassin import learner

    if args.action == "stats":
        return learner.stats()
    if args.action == "learn":
        return learner.learn(base.load_config())
    return learner.expire_junkmail(base.load_config())
