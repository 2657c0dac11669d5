"""`appliance queue list|flush|delete|hold|release [ID...|ALL]`: Postfix's queue
(the model, shared with status and the console, is appliance/queue.py)."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from appliance import queue

    if args.action == "list":
        sys.stdout.write(queue.format_list(queue.messages()))
    else:
        sys.stdout.write(queue.act(args.action, args.ids))
    return 0
