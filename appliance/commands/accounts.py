"""`appliance user|group|pseudonym|domain ACTION [NAME ...]`: the accounts, from one table.

Each verb is one collection of appliance.toml. COLLECTIONS says, per verb, which actions it
has (in the order `--help` lists them) and what each does through the model in
appliance/accounts.py. An action edits the loaded config; the change is then committed
(rendered, checked, applied) and "VERB NAME: ACTION done" printed. `list` only prints.

    appliance user add|passwd|list NAME  passwords checked (system.password_strength)
    appliance user del NAME [--purge]    the mailbox is archived (--purge: deleted)
    appliance user app-password add|list|remove USER [NAME]   a device's own password
    appliance group add|del|list|member-add|member-del NAME [USER...]
    appliance pseudonym add|del|list NAME [ACCOUNT]
    appliance domain add|del|list NAME [--mail-server HOST[:PORT]]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance import accounts
from appliance.commands import base
from appliance.config import Config, ConfigError, app_passwords

# Runs once the change is committed; returns the lines to print before "... done".
After = Callable[[], list[str]]
# An action that changes the config: NAME is args.name, never empty.
Change = Callable[[Config, argparse.Namespace], After | None]
# `list`: the lines to print.
Show = Callable[[Config], list[str]]
# An action with its own arguments and output (app-password): the exit status.
Command = Callable[[Config, argparse.Namespace], int]


class Refused(Exception):
    """A new password the strength check refuses: said on stderr, exit 1 (not a
    configuration error's 2), nothing changed."""


@dataclass(frozen=True)
class Collection:
    table: str  # the collection in appliance.toml
    noun: str  # what the usage error calls a missing NAME
    show: Show  # `list`
    # action -> its change, in the order --help lists them; None is `list`
    actions: dict[str, Change | None]
    # actions that parse the rest of the line themselves, after those above
    commands: dict[str, Command] = field(default_factory=dict)

    def choices(self) -> list[str]:
        return [*self.actions, *self.commands]


# -- users --------------------------------------------------------------------------------

def _new_password(config: Config, name: str, args: argparse.Namespace) -> str:
    """A new password, read and checked, hashed (bcrypt: over 72 bytes is a ValueError)."""
    from appliance.smtpd.auth import hash_password

    password = base.read_password(args.password_stdin)
    if problem := accounts.check_password(config, name, password):
        raise Refused(f"password for {name} refused: {problem}")
    return hash_password(password)


def _kept(name: str, archived: Path | None) -> list[str]:
    return [f"user {name}: the old mailbox is kept in {archived}"] if archived else []


def _user_add(config: Config, args: argparse.Namespace) -> After:
    name = args.name
    accounts.check_name(name)
    if name in config.data["users"]:
        raise ConfigError("user already exists", key=f"users.{name}")
    accounts.add_user(config, name, _new_password(config, name, args), args.full_name or "")
    # a mailbox left by an earlier user of this name (deleted by hand) is not hers
    archived = accounts.archive_mailbox(name)
    return lambda: _kept(name, archived)


def _user_passwd(config: Config, args: argparse.Namespace) -> None:
    if args.name not in config.data["users"]:
        raise ConfigError("no such user", key=f"users.{args.name}")
    accounts.set_password(config, args.name, _new_password(config, args.name, args))


def _user_del(config: Config, args: argparse.Namespace) -> After:
    name, purge = args.name, args.purge
    accounts.delete_user(config, name)

    def after() -> list[str]:
        # after the commit: Dovecot no longer knows the user, so nothing recreates it
        archived = accounts.archive_mailbox(name, purge=purge)
        return ([f"user {name}: mailbox deleted"] if purge else []) + _kept(name, archived)
    return after


def _user_list(config: Config) -> list[str]:
    return [f"{name}\t{user['full_name']}" + ("" if user["password"] else
                                               "  (no password: cannot log in)")
            for name, user in sorted(config.data["users"].items())]


APP_PASSWORD_USAGE = ("`appliance user app-password add USER NAME`, `app-password list USER` "
                      "or `app-password remove USER NAME`")


def _app_password(config: Config, args: argparse.Namespace) -> int:
    """`user app-password add|list|remove USER [NAME]`: add prints the new password once,
    as the last line; add and remove apply at once, as `user passwd` does."""
    sub, rest = args.name, list(args.rest)
    wants = {"add": 2, "remove": 2, "list": 1}
    if sub not in wants or len(rest) != wants[sub]:
        raise ConfigError(APP_PASSWORD_USAGE)
    user = rest[0]
    entry = config.data["users"].get(user)
    if entry is None:
        raise ConfigError("no such user", key=f"users.{user}")
    if sub == "list":
        for p in app_passwords.entries(entry["app_passwords"]):
            print(f"{p.name}\t{p.created}")
        return 0
    name = rest[1]
    if sub == "remove":
        accounts.remove_app_password(config, user, name)
        base.commit(config)
        print(f"user {user}: app password {name} removed; it no longer logs in")
        return 0
    password = app_passwords.generate()
    accounts.add_app_password(config, user, name, password)
    base.commit(config)
    print(f"user {user}: app password {name} added. It logs in as {user} to IMAP, POP3 "
          "and SMTP submission, not to the webmail. It is shown only now; a change of "
          f"{user}'s own password leaves it working, `appliance user app-password remove "
          f"{user} {name}` revokes it:")
    print(password)
    return 0


# -- groups, pseudonyms, domains ----------------------------------------------------------

def _group_list(config: Config) -> list[str]:
    lines = []
    for name, group in sorted(config.data["groups"].items()):
        gets = accounts.group_recipients(config, name)
        lines.append(f"{name}\t{', '.join(group['members'])}" +
                     (f"\t(mail to: {', '.join(gets)})" if gets != group["members"] else ""))
    return lines


def _pseudonym_add(config: Config, args: argparse.Namespace) -> None:
    if not args.account:
        raise ConfigError("`appliance pseudonym add NAME ACCOUNT`")
    accounts.add_entry(config, "pseudonyms", args.name, {"account": args.account})


def _domain_list(config: Config) -> list[str]:
    lines = [f"{config.data['system']['domain']}\t(primary)"]
    for name, entry in sorted(config.data["domains"].items()):
        where = f"-> {entry['mail_server']}" if entry["mail_server"] else "mailboxes here"
        lines.append(f"{name}\t{where}")
    return lines


def _delete(table: str) -> Change:
    return lambda config, args: accounts.delete_entry(config, table, args.name)


COLLECTIONS: dict[str, Collection] = {
    "user": Collection("users", "a user name", _user_list, {
        "add": _user_add,
        "del": _user_del,
        "passwd": _user_passwd,
        "list": None,
    }, {"app-password": _app_password}),
    "group": Collection("groups", "a group name", _group_list, {
        "add": lambda config, args: accounts.add_entry(config, "groups", args.name,
                                                       {"members": args.users}),
        "del": _delete("groups"),
        "list": None,
        "member-add": lambda config, args: accounts.change_members(config, args.name,
                                                                   add=args.users),
        "member-del": lambda config, args: accounts.change_members(config, args.name,
                                                                   remove=args.users),
    }),
    "pseudonym": Collection("pseudonyms", "NAME", lambda config: [
        f"{name}\t-> {entry['account']}"
        for name, entry in sorted(config.data["pseudonyms"].items())], {
        "add": _pseudonym_add,
        "del": _delete("pseudonyms"),
        "list": None,
    }),
    "domain": Collection("domains", "a domain name", _domain_list, {
        "add": lambda config, args: accounts.add_entry(
            config, "domains", args.name,
            {"mail_server": args.mail_server} if args.mail_server else {}),
        "del": _delete("domains"),
        "list": None,
    }),
}


def run(args: argparse.Namespace) -> int:
    """One accounts verb (args.command) and action (args.action)."""
    verb, action = args.command, args.action
    coll = COLLECTIONS[verb]
    config = base.load_config()
    if action in coll.commands:
        return coll.commands[action](config, args)
    if getattr(args, "rest", None):
        raise ConfigError(f"`appliance {verb} {action}`: too many arguments "
                          f"({' '.join(args.rest)})")
    change = coll.actions[action]
    if change is None:
        for line in coll.show(config):
            print(line)
        return 0
    if not args.name:
        raise ConfigError(f"`appliance {verb} {action}` needs {coll.noun}")
    try:
        after = change(config, args)
    except Refused as e:
        print(f"appliance: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a password over bcrypt's 72 bytes
        raise ConfigError(str(e)) from None
    base.commit(config)
    for line in after() if after else []:
        print(line)
    print(f"{verb} {args.name}: {action} done")
    return 0
