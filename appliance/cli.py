"""The `appliance` command (inside the container; `make` wraps it from outside).

    appliance run                    the entrypoint: render and start everything
    appliance apply [--dry-run]      make the running services match appliance.toml
    appliance check                  validate appliance.toml, change nothing
    appliance user add|passwd|list NAME  passwords checked (system.password_strength)
    appliance user del NAME [--purge]    the mailbox is archived (--purge: deleted)
    appliance group add|del|list|member-add|member-del
    appliance pseudonym add|del|list
    appliance domain add|del|list
    appliance config get|set|unset KEY [VALUE...]   one setting, applied at once
    appliance config show [SECTION]  every setting with its current value
    appliance queue list|flush|delete|hold|release [ID...|ALL]
    appliance status                 services, queue, disk, certificate
    appliance backup [FILE]          the data volume as tar.gz (default: stdout)
    appliance restore [FILE]         replace the data volume from a backup
    appliance print-dns [DOMAIN]     MX, A, DKIM, SPF and DMARC records to publish
    appliance dmarc-report           send DMARC aggregate reports now
    appliance smtpd smtp|smtps|submission   one SMTP daemon (run by supervisord)
    appliance scheduler              periodic jobs (run by supervisord)
    appliance healthcheck            exit 0 when SMTP and IMAP answer
    appliance webmail-password       a user's own password change (Roundcube, via sudo)
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import tomlkit

from appliance import paths
from appliance.config import Config, ConfigError, load


def _load() -> Config:
    return load(paths.CONFIG)


def _commit(config: Config, *, dry_run: bool = False) -> None:
    from appliance.apply import commit

    plan = commit(config, dry_run=dry_run)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if dry_run:
        sys.stdout.write("".join(plan.diffs))


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
    from appliance.boot import run

    return run()


def cmd_apply(args: argparse.Namespace) -> int:
    from appliance.apply import apply

    plan = apply(_load(), dry_run=args.dry_run)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        sys.stdout.write("".join(plan.diffs) or "nothing would change\n")
    else:
        print("applied: " + (", ".join(plan.services) or "nothing changed"))
        for line in plan.reloaded:
            print(f"  {line}")
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
    archived = None
    try:
        if args.action == "add":
            accounts.check_name(name)
            if name in config.data["users"]:
                raise ConfigError("user already exists", key=f"users.{name}")
            password = _read_password(args.password_stdin)
            if problem := accounts.check_password(config, name, password):
                print(f"appliance: password for {name} refused: {problem}", file=sys.stderr)
                return 1
            accounts.add_user(config, name, hash_password(password), args.full_name or "")
            # a mailbox left by an earlier user of this name (deleted by hand) is not hers
            archived = accounts.archive_mailbox(name)
        elif args.action == "passwd":
            if name not in config.data["users"]:
                raise ConfigError("no such user", key=f"users.{name}")
            password = _read_password(args.password_stdin)
            if problem := accounts.check_password(config, name, password):
                print(f"appliance: password for {name} refused: {problem}", file=sys.stderr)
                return 1
            accounts.set_password(config, name, hash_password(password))
        elif args.action == "del":
            accounts.delete_user(config, name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _commit(config)
    if args.action == "del":
        # after the commit: Dovecot no longer knows the user, so nothing recreates it
        archived = accounts.archive_mailbox(name, purge=args.purge)
        if args.purge:
            print(f"user {name}: mailbox deleted")
    if archived:
        print(f"user {name}: the old mailbox is kept in {archived}")
    print(f"user {name}: {args.action} done")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from appliance.config import edit

    config = _load()
    if args.action == "show":
        return cmd_config_show(config, args.key)
    if not args.key:
        raise ConfigError(f"`appliance config {args.action}` needs a key")
    if args.action == "get":
        value = edit.get_value(config, args.key)
        print(tomlkit.item(value).as_string())
        return 0
    if args.action == "set":
        if not args.values:
            raise ConfigError("set needs a value", key=args.key)
        edit.set_value(config, args.key, args.values)
    else:
        edit.unset_value(config, args.key)
    _commit(config, dry_run=args.dry_run)
    return 0


def cmd_config_show(config: Config, section: str | None) -> int:
    """Every setting with its effective value (defaults included), as toml."""
    from appliance.config.schema import COLLECTIONS, SECTIONS, Collection, Section

    def wanted(path: str) -> bool:
        return not section or path == section or path.startswith(section + ".")

    def hidden(spec: Section | Collection, values: dict) -> dict:
        """A password (the smarthost's, fetchmail's, a user's hash: Key.secret) is never
        printed: `config get KEY` shows one on purpose. Sub-tables ([smtpd] holds
        [smtpd.smtp]) are printed under their own header."""
        def secret(name: str) -> bool:
            key = spec.key(name)
            return key is not None and key.secret

        return {k: "(set)" if v and secret(k) else v
                for k, v in values.items() if not isinstance(v, dict)}

    text = ""
    for spec in SECTIONS:
        if wanted(spec.path):
            header = ".".join(tomlkit.key(p).as_string() for p in spec.path.split("."))
            text += f"[{header}]\n{tomlkit.dumps(hidden(spec, config.get(spec.path)))}\n"
    for coll in COLLECTIONS:
        if not wanted(coll.path):
            continue
        for name, entry in sorted(config.data[coll.path].items()):
            entry = hidden(coll, entry)
            text += f"[{coll.path}.{tomlkit.key(name).as_string()}]\n{tomlkit.dumps(entry)}\n"
    if not text:
        raise ConfigError("no such section (see docs/settings.md)", key=section)
    sys.stdout.write(text)
    return 0


def cmd_group(args: argparse.Namespace) -> int:
    from appliance import accounts

    config = _load()
    if args.action == "list":
        for name, group in sorted(config.data["groups"].items()):
            gets = accounts.group_recipients(config, name)
            print(f"{name}\t{', '.join(group['members'])}" +
                  (f"\t(mail to: {', '.join(gets)})" if gets != group["members"] else ""))
        return 0
    if not args.name:
        raise ConfigError(f"`appliance group {args.action}` needs a group name")
    key = f"groups.{args.name}"
    if args.action == "add":
        accounts.add_entry(config, "groups", args.name, {"members": args.users})
    elif args.action == "del":
        accounts.delete_entry(config, "groups", args.name)
    else:
        if args.name not in config.data["groups"]:
            raise ConfigError("no such group", key=key)
        members = list(config.data["groups"][args.name]["members"])
        if args.action == "member-add":
            members += [u for u in args.users if u not in members]
        else:
            members = [m for m in members if m not in args.users]
        config.document["groups"][args.name]["members"] = members  # type: ignore[index]
    _commit(config)
    print(f"group {args.name}: {args.action} done")
    return 0


def cmd_pseudonym(args: argparse.Namespace) -> int:
    from appliance import accounts

    config = _load()
    if args.action == "list":
        for name, entry in sorted(config.data["pseudonyms"].items()):
            print(f"{name}\t-> {entry['account']}")
        return 0
    if not args.name:
        raise ConfigError(f"`appliance pseudonym {args.action}` needs NAME")
    if args.action == "add":
        if not args.account:
            raise ConfigError("`appliance pseudonym add NAME ACCOUNT`")
        accounts.add_entry(config, "pseudonyms", args.name, {"account": args.account})
    else:
        accounts.delete_entry(config, "pseudonyms", args.name)
    _commit(config)
    print(f"pseudonym {args.name}: {args.action} done")
    return 0


def cmd_domain(args: argparse.Namespace) -> int:
    from appliance import accounts

    config = _load()
    if args.action == "list":
        print(f"{config.data['system']['domain']}\t(primary)")
        for name, entry in sorted(config.data["domains"].items()):
            where = f"-> {entry['mail_server']}" if entry["mail_server"] else "mailboxes here"
            print(f"{name}\t{where}")
        return 0
    if not args.name:
        raise ConfigError(f"`appliance domain {args.action}` needs a domain name")
    if args.action == "add":
        fields = {"mail_server": args.mail_server} if args.mail_server else {}
        accounts.add_entry(config, "domains", args.name, fields)
    else:
        accounts.delete_entry(config, "domains", args.name)
    _commit(config)
    print(f"domain {args.name}: {args.action} done")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from appliance import queue

    if args.action == "list":
        sys.stdout.write(queue.format_list(queue.messages()))
    else:
        sys.stdout.write(queue.act(args.action, args.ids))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from appliance import status

    s = status.collect()
    sys.stdout.write(status.format_status(s))
    return 0 if s.healthy else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from appliance import backup

    if args.file in (None, "-"):
        if sys.stdout.isatty():
            raise ConfigError("the archive is binary: redirect it (appliance backup > FILE)")
        sys.stdout.flush()
        count = backup.backup(sys.stdout.buffer)
    else:
        # keys, password hashes and service passwords: readable by its owner only
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            count = backup.backup(f)
    print(f"backup: {count} files and folders of {paths.DATA}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance import backup

    if args.file in (None, "-"):
        backup.restore(sys.stdin.buffer)
    else:
        with open(args.file, "rb") as f:
            backup.restore(f)
    services = backup.restart_after_restore()
    print("restore: done; rendered " + (", ".join(services) or "nothing new") +
          "; every service restarted")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from appliance.scheduler import main

    return main()


def cmd_fetchmail(args: argparse.Namespace) -> int:
    from appliance.services.fetchmail import poll as fetchmail

    return fetchmail.run(_load())


def cmd_spam(args: argparse.Namespace) -> int:
    from appliance.services.spamassassin import learner as spam

    if args.action == "stats":
        return spam.stats()
    if args.action == "learn":
        return spam.learn(_load())
    return spam.expire_junkmail(_load())


def cmd_clamd(args: argparse.Namespace) -> int:
    from appliance.services.clamav.signatures import run_clamd

    return run_clamd()


def cmd_print_dns(args: argparse.Namespace) -> int:
    from appliance.dkim_keys import main

    return main([args.domain] if args.domain else [])


def cmd_dmarc_report(args: argparse.Namespace) -> int:
    from appliance.dmarc_report import main

    return main(args.rest)


def cmd_smtpd(args: argparse.Namespace) -> int:
    from appliance.smtpd.main import main

    return main(args.daemon)


def cmd_webmail_password(args: argparse.Namespace) -> int:
    from appliance import webmail_password

    return webmail_password.main()


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from appliance import health, recovery

    # a broken appliance.toml fails the check, named, while the last good one is probed
    config, problem = recovery.current()
    problems = [problem] if problem else []
    if config is not None:
        smtp = config.data["smtpd"]["smtp"]
        problems += [
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
    u.add_argument("--purge", action="store_true",
                   help="del: delete the mailbox instead of archiving it")
    u.set_defaults(fn=cmd_user)
    c = sub.add_parser("config", help="read or change one setting, then apply")
    c.add_argument("action", choices=["get", "set", "unset", "show"])
    c.add_argument("key", nargs="?", help="dotted name, e.g. smtpd.dnsbl.enabled "
                   "(show: a section, e.g. delivery)")
    c.add_argument("values", nargs="*", help="the value (lists: items or a,b,c)")
    c.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    c.set_defaults(fn=cmd_config)
    g = sub.add_parser("group", help="groups: NAME@ every domain reaches the members")
    g.add_argument("action", choices=["add", "del", "list", "member-add", "member-del"])
    g.add_argument("name", nargs="?")
    g.add_argument("users", nargs="*", help="member user names")
    g.set_defaults(fn=cmd_group)
    ps = sub.add_parser("pseudonym", help="extra addresses for a user or group")
    ps.add_argument("action", choices=["add", "del", "list"])
    ps.add_argument("name", nargs="?", help="local part, or local@domain")
    ps.add_argument("account", nargs="?", help="the user or group that gets the mail")
    ps.set_defaults(fn=cmd_pseudonym)
    dm = sub.add_parser("domain", help="more mail domains")
    dm.add_argument("action", choices=["add", "del", "list"])
    dm.add_argument("name", nargs="?")
    dm.add_argument("--mail-server", help="deliver this domain to that server (host[:port])")
    dm.set_defaults(fn=cmd_domain)
    q = sub.add_parser("queue", help="Postfix's queue: list, flush, delete, hold, release")
    q.add_argument("action", choices=["list", "flush", "delete", "hold", "release"])
    q.add_argument("ids", nargs="*", help="queue ids from `queue list`, or ALL")
    q.set_defaults(fn=cmd_queue)
    sub.add_parser("status", help="services, queue, disk, certificate; exit 1 on problems"
                   ).set_defaults(fn=cmd_status)
    b = sub.add_parser("backup", help="the data volume as tar.gz")
    b.add_argument("file", nargs="?", help="default: standard output")
    b.set_defaults(fn=cmd_backup)
    rs = sub.add_parser("restore", help="replace the data volume from a backup")
    rs.add_argument("file", nargs="?", help="default: standard input")
    rs.set_defaults(fn=cmd_restore)
    d = sub.add_parser("print-dns", help="MX, A, DKIM, SPF and DMARC records to publish for "
                       "a domain (SME qpsmtpd-print-dns)")
    d.add_argument("domain", nargs="?", help="default: the primary domain")
    d.set_defaults(fn=cmd_print_dns)
    r = sub.add_parser("dmarc-report", help="send the DMARC aggregate reports now "
                       "(the scheduler does it daily)")
    r.add_argument("rest", nargs=argparse.REMAINDER)
    r.set_defaults(fn=cmd_dmarc_report)
    sub.add_parser("fetchmail", help="retrieve mail from the secondary server now "
                   "(the scheduler does it at the fetchmail.freq_* intervals)"
                   ).set_defaults(fn=cmd_fetchmail)
    sp = sub.add_parser("spam", help="learn LearnAsSpam/LearnAsHam now, expire junkmail, "
                        "or show the Bayes statistics")
    sp.add_argument("action", choices=("learn", "expire-junkmail", "stats"))
    sp.set_defaults(fn=cmd_spam)
    sub.add_parser("clamd", help="wait for virus signatures, then run clamd (supervisord "
                   "does this)").set_defaults(fn=cmd_clamd)
    sub.add_parser("scheduler", help="run the periodic jobs (supervisord does this)"
                   ).set_defaults(fn=cmd_scheduler)
    s = sub.add_parser("smtpd", help="run one SMTP daemon (supervisord does this)")
    s.add_argument("daemon", choices=["smtp", "smtps", "submission"])
    s.set_defaults(fn=cmd_smtpd)
    sub.add_parser("healthcheck", help="exit 0 when SMTP and IMAP answer"
                   ).set_defaults(fn=cmd_healthcheck)
    sub.add_parser("webmail-password", help="change a user's own password: user, current "
                   "and new password on standard input, one a line (Roundcube runs it)"
                   ).set_defaults(fn=cmd_webmail_password)
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
