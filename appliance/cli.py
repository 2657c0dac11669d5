"""The `appliance` command (inside the container; `make` wraps it from outside).

    appliance run                    the entrypoint: render and start everything
    appliance apply [--dry-run]      make the running services match appliance.toml
    appliance check                  validate appliance.toml, change nothing
    appliance user add|del|passwd|list
    appliance smtpd smtp|smtps|submission   one SMTP daemon (run by supervisord)
    appliance healthcheck            exit 0 when SMTP and IMAP answer
"""

from __future__ import annotations

import argparse
import getpass
import sys

import tomlkit

from appliance import paths
from appliance.config import Config, ConfigError, load, parse, write_atomic


def _load() -> Config:
    return load(paths.CONFIG)


def _commit(config: Config, *, dry_run: bool = False) -> None:
    """Validate the edited document, apply it, and only then write the toml."""
    from appliance.apply import apply

    text = tomlkit.dumps(config.document)
    new = parse(text, paths.CONFIG)
    plan = apply(new, dry_run=dry_run)
    if dry_run:
        sys.stdout.write("".join(plan.diffs))
        return
    write_atomic(paths.CONFIG, text, mode=0o600)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for a password: use --password-stdin")
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError("the two passwords differ")
    if not password:
        raise ConfigError("empty password")
    return password


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.supervisor import run

    return run()


def cmd_apply(args: argparse.Namespace) -> int:
    from appliance.apply import apply

    plan = apply(_load(), dry_run=args.dry_run)
    if args.dry_run:
        sys.stdout.write("".join(plan.diffs) or "nothing would change\n")
    else:
        print("applied: " + (", ".join(plan.services) or "nothing changed"))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    _load()
    print(f"{paths.CONFIG}: OK")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from appliance import accounts
    from appliance.smtpd.auth import hash_password

    config = _load()
    if args.action == "list":
        for name, user in sorted(config.data["users"].items()):
            state = "" if user["password"] else "  (no password: cannot log in)"
            print(f"{name}\t{user['full_name']}{state}")
        return 0
    name = args.name
    if not name:
        raise ConfigError(f"`appliance user {args.action}` needs a user name")
    try:
        if args.action == "add":
            accounts.check_name(name)
            if name in config.data["users"]:
                raise ConfigError("user already exists", key=f"users.{name}")
            pw_hash = hash_password(_read_password(args.password_stdin))
            accounts.add_user(config, name, pw_hash, args.full_name or "")
        elif args.action == "passwd":
            if name not in config.data["users"]:
                raise ConfigError("no such user", key=f"users.{name}")
            accounts.set_password(config, name, hash_password(_read_password(args.password_stdin)))
        elif args.action == "del":
            accounts.delete_user(config, name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _commit(config)
    print(f"user {name}: {args.action} done")
    return 0


def cmd_smtpd(args: argparse.Namespace) -> int:
    from appliance.smtpd.main import main

    return main(args.daemon)


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from appliance import health

    config = _load()
    smtp = config.data["smtpd"]["smtp"]
    problems = [
        p for p in (
            health.check_smtp(smtp["port"]) if smtp["enabled"] else None,
            health.check_handoff(),
            health.check_imap() if config.data["imap"]["enabled"] else None,
        ) if p
    ]
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print("healthy")
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appliance", description="Mail appliance control")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="render everything and start supervisord (entrypoint)"
                   ).set_defaults(fn=cmd_run)
    a = sub.add_parser("apply", help="render, check, swap and reload what changed")
    a.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    a.set_defaults(fn=cmd_apply)
    sub.add_parser("check", help="validate appliance.toml").set_defaults(fn=cmd_check)
    u = sub.add_parser("user", help="mail users")
    u.add_argument("action", choices=["add", "del", "passwd", "list"])
    u.add_argument("name", nargs="?")
    u.add_argument("--full-name")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    u.set_defaults(fn=cmd_user)
    s = sub.add_parser("smtpd", help="run one SMTP daemon (supervisord does this)")
    s.add_argument("daemon", choices=["smtp", "smtps", "submission"])
    s.set_defaults(fn=cmd_smtpd)
    sub.add_parser("healthcheck", help="exit 0 when SMTP and IMAP answer"
                   ).set_defaults(fn=cmd_healthcheck)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as e:
        print(f"appliance: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
