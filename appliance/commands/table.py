"""The `appliance` command (inside the container; `make` wraps it from outside).

    appliance run                    the entrypoint: render and start everything
    appliance apply [--dry-run]      make the running services match appliance.toml
    appliance check                  validate appliance.toml, change nothing
    appliance user add|passwd|list NAME  passwords checked (system.password_strength)
    appliance user del NAME [--purge]    the mailbox is archived (--purge: deleted)
    appliance user app-password add|list|remove USER [NAME]   IMAP/POP3/SMTP, not webmail
    appliance group add|del|list|member-add|member-del
    appliance pseudonym add|del|list
    appliance domain add|del|list
    appliance config get|set|unset KEY [VALUE...]   one setting, applied at once
    appliance config show [SECTION]  every setting with its current value
    appliance queue list|flush|delete|hold|release [ID...|ALL]
    appliance ban list|add|remove [ADDRESS] [--for DURATION]   failed-login bans
    appliance status                 services, queue, disk, certificate
    appliance cert renew|status      the ACME certificate (tls.acme)
    appliance backup [FILE]          the data volume as tar.gz (default: stdout)
    appliance restore [FILE]         replace the data volume from a backup
    appliance print-dns [DOMAIN]     the DNS records to publish for a domain
    appliance dns check [DOMAIN|--all]   are they published? ok, missing or wrong
    appliance dmarc-report           send DMARC aggregate reports now
    appliance fetchmail              retrieve mail from the secondary server now
    appliance spam learn|expire-junkmail|stats   the Bayes learner's jobs now
    appliance clamd                  wait for virus signatures, then run clamd
    appliance smtpd smtp|smtps|submission   one SMTP daemon (run by supervisord)
    appliance scheduler              periodic jobs (run by supervisord)
    appliance security-policy        Dovecot's ban checks (run by supervisord)
    appliance autoconfig-server      mail clients' autoconfig for nginx (run by supervisord)
    appliance healthcheck            exit 0 when SMTP and IMAP answer
    appliance webmail-password       a user's own password change (Roundcube, via sudo)

VERBS below is the one table of verbs and their arguments. Each names the module in
appliance/commands that runs it (`module:function`, called with the parsed arguments),
imported only when that verb runs: the healthcheck every few seconds loads no more than it
needs. A configuration error is printed as `appliance: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.commands.accounts import COLLECTIONS as ACCOUNTS
from appliance.config import ConfigError
from appliance.config.schema import SMTP_DAEMONS


@dataclass(frozen=True)
class Arg:
    """One add_argument call."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    run: str  # "module:function" in appliance.commands
    args: tuple[Arg, ...] = ()

    def function(self) -> Callable[[argparse.Namespace], int]:
        module, _, name = self.run.partition(":")
        fn: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"appliance.commands.{module}"), name)
        return fn


def _actions(verb: str) -> Arg:
    """An accounts verb's ACTION: its actions come from the accounts table."""
    return arg("action", choices=ACCOUNTS[verb].choices())


DRY_RUN = arg("--dry-run", action="store_true", help="show the diff, change nothing")

VERBS: tuple[Verb, ...] = (
    Verb("run", "render everything and start supervisord (entrypoint)", "run:run"),
    Verb("apply", "render, check, swap and reload what changed", "apply:run", (DRY_RUN,)),
    Verb("check", "validate appliance.toml", "check:run"),
    Verb("user", "mail users", "accounts:run", (
        _actions("user"),
        arg("name", nargs="?", help="the user (app-password: add, list or remove)"),
        arg("rest", nargs="*", metavar="USER NAME",
            help="app-password: the user and the device's name; the password is printed "
            "once, works for IMAP, POP3 and SMTP submission but not the webmail, and "
            "survives a change of the user's own password"),
        arg("--full-name"),
        arg("--password-stdin", action="store_true",
            help="read the password from the first line of standard input"),
        arg("--purge", action="store_true",
            help="del: delete the mailbox instead of archiving it"),
    )),
    Verb("config", "read or change one setting, then apply", "config:run", (
        arg("action", choices=["get", "set", "unset", "show"]),
        arg("key", nargs="?", help="dotted name, e.g. smtpd.dnsbl.enabled "
            "(show: a section, e.g. delivery)"),
        arg("values", nargs="*", help="the value (lists: items or a,b,c)"),
        DRY_RUN,
    )),
    Verb("group", "groups: NAME@ every domain reaches the members", "accounts:run", (
        _actions("group"),
        arg("name", nargs="?"),
        arg("users", nargs="*", help="member user names"),
    )),
    Verb("pseudonym", "extra addresses for a user or group", "accounts:run", (
        _actions("pseudonym"),
        arg("name", nargs="?", help="local part, or local@domain"),
        arg("account", nargs="?", help="the user or group that gets the mail"),
    )),
    Verb("domain", "more mail domains", "accounts:run", (
        _actions("domain"),
        arg("name", nargs="?"),
        arg("--mail-server", help="deliver this domain to that server (host[:port])"),
    )),
    Verb("queue", "Postfix's queue: list, flush, delete, hold, release", "queue:run", (
        arg("action", choices=["list", "flush", "delete", "hold", "release"]),
        arg("ids", nargs="*", help="queue ids from `queue list`, or ALL"),
    )),
    Verb("ban", "addresses banned for failed logins (security.*): list them, ban one "
         "by hand or lift a ban", "ban:run", (
        arg("action", choices=["list", "add", "remove"]),
        arg("address", nargs="?", help="an IP address or a network (add, remove)"),
        arg("--for", dest="duration", metavar="DURATION",
            help="add: how long, e.g. 30m, 2h, 7d (default: until removed, as SME's "
            "hosts_allow deny)"),
        arg("--reason", default="", help="add: shown in `ban list`"),
    )),
    Verb("status", "services, queue, disk, certificate; exit 1 on problems", "status:run"),
    Verb("cert", "the ACME certificate (tls.acme): renew now, or show issuer, names, "
         "expiry and the last error", "cert:run", (
        arg("action", choices=("renew", "status")),
        arg("--if-due", action="store_true",
            help="renew: only when due (the scheduler's job)"),
    )),
    Verb("backup", "the data volume as tar.gz", "backup:run_backup", (
        arg("file", nargs="?", help="default: standard output"),
    )),
    Verb("restore", "replace the data volume from a backup", "backup:run_restore", (
        arg("file", nargs="?", help="default: standard input"),
    )),
    Verb("print-dns", "the DNS records to publish for a domain: MX, A, DKIM, SPF, DMARC, "
         "MTA-STS, TLS-RPT, autoconfig, SRV (SME qpsmtpd-print-dns)", "print_dns:run", (
        arg("domain", nargs="?", help="default: the primary domain"),
    )),
    Verb("dns", "look up, through the appliance's resolver, each record print-dns asks "
         "for and say ok, missing or wrong; exit 1 when any is", "dns:run", (
        arg("action", choices=["check"]),
        arg("domain", nargs="?", help="default: the primary domain"),
        arg("--all", action="store_true", help="every one of our domains"),
    )),
    Verb("dmarc-report", "send the DMARC aggregate reports now (the scheduler does it "
         "daily)", "dmarc_report:run", (arg("rest", nargs=argparse.REMAINDER),)),
    Verb("fetchmail", "retrieve mail from the secondary server now (the scheduler does it "
         "at the fetchmail.freq_* intervals)", "fetchmail:run"),
    Verb("spam", "learn LearnAsSpam/LearnAsHam now, expire junkmail, or show the Bayes "
         "statistics", "spam:run", (
        arg("action", choices=("learn", "expire-junkmail", "stats")),
    )),
    Verb("clamd", "wait for virus signatures, then run clamd (supervisord does this)",
         "clamd:run"),
    Verb("scheduler", "run the periodic jobs (supervisord does this)", "scheduler:run"),
    Verb("security-policy", "run Dovecot's auth policy server: bans for IMAP, POP3 and "
         "the webmail (supervisord does this)", "security_policy:run"),
    Verb("autoconfig-server", "serve Thunderbird's autoconfig, Outlook's autodiscover and "
         "the Apple profile to nginx (supervisord does this)", "autoconfig_server:run"),
    Verb("smtpd", "run one SMTP daemon (supervisord does this)", "smtpd:run", (
        arg("daemon", choices=list(SMTP_DAEMONS)),
    )),
    Verb("healthcheck", "exit 0 when SMTP and IMAP answer", "healthcheck:run"),
    Verb("webmail-password", "change a user's own password: user, current and new "
         "password on standard input, one a line (Roundcube runs it)",
         "webmail_password:run"),
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appliance", description="Mail appliance control")
    sub = p.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        v = sub.add_parser(verb.name, help=verb.help)
        for a in verb.args:
            v.add_argument(*a.flags, **a.options)
        v.set_defaults(verb=verb)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.verb.function()(args) or 0)
    except ConfigError as e:
        print(f"appliance: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
