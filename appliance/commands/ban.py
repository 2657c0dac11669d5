"""`appliance ban list|add|remove [ADDRESS] [--for DURATION]`: the failed-login bans
(appliance.security.bans), on every port at once."""

from __future__ import annotations

import argparse
import sys
import time

from appliance.config import ConfigError


def when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S",
                                                   time.localtime(stamp))


def format_bans(bans: list, now: float) -> str:
    """One line per ban: address, expiry (time left), first and last failure, reason."""
    from appliance.security.bans import format_duration

    if not bans:
        return "no address is banned\n"
    rows = [("ADDRESS", "EXPIRES", "FIRST FAILURE", "LAST FAILURE", "REASON")]
    for b in bans:
        left = b.left(now)
        expires = ("never (ban remove lifts it)" if left is None
                   else f"{when(b.until)} (in {format_duration(left)})")
        reason = b.reason + (f", last {b.protocol} user {b.account!r}" if b.account else "")
        if b.offences > 1:
            reason += f", offence {b.offences}"
        rows.append((b.key, expires, when(b.first_failure), when(b.last_failure), reason))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                   + "  " + r[4] + "\n" for r in rows)


def run(args: argparse.Namespace) -> int:
    from appliance.commands.base import load_config
    from appliance.security.bans import BanError, format_duration, parse_duration
    from appliance.services.security import open_store

    store = open_store(load_config())
    try:
        if args.action == "list":
            sys.stdout.write(format_bans(store.bans(), time.time()))
            for account, count in store.accounts_under_attack():
                print(f"account {account}: {count} failed logins in the last hour, "
                      f"each login slowed by {store.rules.account_delay:g}s")
            return 0
        if not args.address:
            raise ConfigError(f"ban {args.action}: which address or network?")
        if args.action == "add":
            seconds = parse_duration(args.duration) if args.duration else None
            ban = store.add(args.address, seconds, args.reason)
            print(f"{ban.key} banned " + ("until removed" if seconds is None
                                          else f"for {format_duration(seconds)}"))
            return 0
        lifted = store.remove(args.address)
        if not lifted:
            still = store.banned(args.address)
            if still is not None:
                print(f"{args.address} is banned as part of {still.key}: remove that")
            else:
                print(f"{args.address} was not banned (its failures are forgotten)")
            return 1
        print(f"ban lifted: {', '.join(lifted)}")
        return 0
    except BanError as e:
        raise ConfigError(str(e)) from None
    finally:
        store.close()
