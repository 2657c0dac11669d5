"""Accounts in appliance.toml: who exists, and where each address delivers.

Edits go through tomlkit so the user's comments and layout survive. Each change is
validated and applied before the file is written: a change that fails leaves both the
file and the running services as they were.

`addresses()` (appliance.config.addresses, re-exported here) is the one answer to
"which addresses exist here and who gets their mail"; the SMTP daemons (recipient
checks), Postfix (virtual aliases) and the check of smtpd.bcc use it.

`check_password()` is the one password policy (SME passwordstrength): `appliance user
add` and `user passwd` apply it, and so does the webmail's password change, through
`appliance user passwd NAME --password-stdin`. A deleted user's mailbox is archived
(`archive_mailbox`), so a new user of the same name starts empty.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import tomlkit
from tomlkit.items import Table

from appliance import paths
from appliance.config import Config, ConfigError, app_passwords
from appliance.config.addresses import EVERYONE as EVERYONE
from appliance.config.addresses import ROLE_ADDRESSES as ROLE_ADDRESSES
from appliance.config.addresses import addresses as addresses
from appliance.config.addresses import group_recipients as group_recipients
from appliance.config.load import reserved_name_problem
from appliance.config.schema import USERNAME_RE, collection

log = logging.getLogger("appliance.accounts")

# zxcvbn's score (0-4) a password needs at intermediate and strong: 3 is "safely
# unguessable" (about 10^8 guesses and more), where SME asks cracklib the same question
GUESSABLE_BELOW = 3


def internal_addresses(config: Config) -> dict[str, str]:
    """Addresses here the internet may not write to (SME Visible internal), each with
    what it reaches: "user" (an internal user's own address, or a pseudonym of a user;
    the internet is told it does not exist, as SME's badrcptto does) or "list" (a group,
    everyone@, a pseudonym of a group; refused as internal). Local networks and our
    logged-in users may write to all of them. "@domain" is the catch-all when
    delivery.unknown_user names an internal account.
    """
    d = config.data
    users, groups = d["users"], d["groups"]
    domains = config.mailbox_domains

    def internal(account: str) -> bool:
        entry = users.get(account) or groups.get(account)
        return entry is not None and entry["visible"] == "internal"

    def kind(account: str) -> str:
        return "user" if account in users else "list"

    out: dict[str, str] = {}
    for name in [*users, *groups]:
        if internal(name):
            out.update((f"{name}@{domain}", kind(name)) for domain in domains)
    if (EVERYONE not in users and EVERYONE not in groups
            and d["delivery"]["everyone_visible"] == "internal"):
        out.update((f"{EVERYONE}@{domain}", "list") for domain in domains)
    for name, pseudonym in d["pseudonyms"].items():
        account, visible = pseudonym["account"], pseudonym["visible"]
        if internal(account) if visible == "account" else visible == "internal":
            named = [name] if "@" in name else [f"{name}@{domain}" for domain in domains]
            out.update((address, kind(account)) for address in named)
    unknown = d["delivery"]["unknown_user"]
    if unknown != "returntosender" and internal(unknown):
        out.update((f"@{domain}", kind(unknown)) for domain in domains)
    existing = addresses(config)
    return {a: k for a, k in sorted(out.items()) if a in existing}


def recipient_delimiters(config: Config) -> str:
    """The extension delimiters in effect: [smtpd.check_goodrcptto] extension_separator
    minus every character that occurs in one of our local names (users, groups,
    pseudonyms). Postfix, Dovecot and our daemons split at the first delimiter, so with
    a user mary-ann a "-" delimiter would send mary-ann+news@ to mary@. The one value
    Postfix's and Dovecot's recipient_delimiter and our recipient checks use."""
    d = config.data
    names = [*d["users"], *d["groups"], *(p.partition("@")[0] for p in d["pseudonyms"])]
    used = set("".join(names))
    configured = d["smtpd"]["check_goodrcptto"]["extension_separator"]
    return "".join(c for c in configured if c not in used)


def unowned_addresses(config: Config) -> list[str]:
    """Addresses that deliver to users without being theirs to send as: the implicit
    everyone@ (SME EveryoneEmail: every user gets it) and the addresses that reach the
    admin only because their group has no one left. sender_login leaves them to
    send_as. postmaster@ and abuse@ are the admin's own role addresses, not here."""
    d = config.data
    implicit = [] if EVERYONE in d["users"] or EVERYONE in d["groups"] else [EVERYONE]
    empty = {g for g in d["groups"] if not group_recipients(config, g)}
    names = implicit + sorted(empty)
    out = {f"{n}@{domain}" for n in names for domain in config.mailbox_domains}
    for name, pseudonym in d["pseudonyms"].items():
        if pseudonym["account"] in empty:
            out.update([name] if "@" in name
                       else (f"{name}@{domain}" for domain in config.mailbox_domains))
    existing = addresses(config)
    return sorted(a for a in out if a in existing)


def _users(config: Config) -> Table:
    doc = config.document
    if "users" not in doc:
        users = tomlkit.table(is_super_table=True)
        doc.add("users", users)
    return doc["users"]


def check_name(name: str, table: str = "users") -> None:
    spec = collection(table)
    assert spec is not None
    if not spec.name_pattern.match(name):
        what = "user name" if table == "users" else "name"
        raise ConfigError(f"bad {what}; must be {spec.name_allowed}", key=f"{table}.{name}")
    if problem := reserved_name_problem(table, name):
        raise ConfigError(problem, key=f"{table}.{name}")


def _set_admin(config: Config, name: str) -> None:
    doc = config.document
    if "system" not in doc:
        doc.add("system", tomlkit.table())
    doc["system"]["admin"] = name


def add_user(config: Config, name: str, password_hash: str, full_name: str = "") -> None:
    """Add [users.NAME]. With system.admin unset, the admin is recorded: the first user
    added, or in a hand-written file the user who already had postmaster@."""
    check_name(name)
    if name in config.data["users"]:
        raise ConfigError("user already exists", key=f"users.{name}")
    entry = tomlkit.table()
    if password_hash:  # SME's `db accounts set NAME user` makes one without
        entry.add("password", password_hash)
    if full_name:
        entry.add("full_name", full_name)
    _users(config).add(name, entry)
    if not config.data["system"]["admin"]:
        _set_admin(config, config.admin or name)


def delete_user(config: Config, name: str) -> None:
    """Remove [users.NAME]. The admin (postmaster@, abuse@) is not deleted while other
    users exist: another is made admin first, so that mail never moves by itself."""
    users = config.data["users"]
    if name not in users:
        raise ConfigError("no such user", key=f"users.{name}")
    if name == config.admin:
        others = [u for u in users if u != name]
        if others:
            raise ConfigError(
                f"{name} is the admin (system.admin: gets postmaster@, abuse@ and "
                "dmarc-feedback@); make another user the admin first: "
                f"appliance config set system.admin {others[0]}", key=f"users.{name}")
        system = config.document.get("system")
        if system is not None and "admin" in system:
            del system["admin"]  # the last user: the next one added becomes the admin
    del _users(config)[name]


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _kick(name: str) -> None:
    """Close the user's IMAP/POP3 sessions, so none writes into a mailbox being moved."""
    if not shutil.which("doveadm"):
        return  # no Dovecot here (tests on the host)
    proc = subprocess.run(["doveadm", "kick", name], capture_output=True, text=True,
                          timeout=30)
    if proc.returncode not in (0, 68):  # 68: no session to kick
        log.warning("doveadm kick %s: %s", name, (proc.stdout + proc.stderr).strip())


def archive_mailbox(name: str, purge: bool = False) -> Path | None:
    """Move a user's mail home (Maildir, Dovecot's indexes and caches, Sieve scripts)
    to paths.MAIL_ARCHIVE/NAME-<UTC time>, or delete it with `purge`. Returns where it
    went (None: there was none, or purged)."""
    if not USERNAME_RE.match(name):  # it becomes a path
        raise ConfigError(f"not a user name: {name!r}")
    home = paths.MAIL_DIR / name
    if not home.exists():
        return None
    _kick(name)
    if purge:
        shutil.rmtree(home)
        return None
    paths.MAIL_ARCHIVE.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = paths.MAIL_ARCHIVE / f"{name}-{_stamp()}"
    n = 1
    while target.exists():
        n += 1
        target = paths.MAIL_ARCHIVE / f"{name}-{_stamp()}-{n}"
    os.rename(home, target)  # same volume: atomic
    return target


def check_password(config: Config, user: str, password: str) -> str | None:
    """What makes `password` too weak for `user` under system.password_strength (SME's
    levels none, normal, intermediate, strong), or None when it will do."""
    import zxcvbn

    system = config.data["system"]
    strength, length = system["password_strength"], system["password_min_length"]
    level = f" (system.password_strength {strength})"
    if len(password) < length:
        return f"it is too short: at least {length} characters{level}"
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        return "it holds control characters"
    if strength == "none":
        return None
    if not re.search(r"[A-Z]", password) or not re.search(r"[a-z]", password):
        return f"it needs upper and lower case letters{level}"
    if strength == "normal":
        return None
    if strength == "strong":
        if not re.search(r"\d", password):
            return f"it needs digits{level}"
        if not re.search(r"[\W_]", password):
            return f"it needs characters other than letters and digits{level}"
    entry = config.data["users"].get(user, {})
    hints = [user, entry.get("full_name", ""), system["hostname"], system["domain"]]
    result = zxcvbn.zxcvbn(password[:100], user_inputs=[h for h in hints if h])
    if result["score"] < GUESSABLE_BELOW:
        why = result["feedback"]["warning"] or "it is easy to guess"
        hint = " ".join(result["feedback"]["suggestions"])
        return f"{why.rstrip('.')}{level}" + (f"; {hint}" if hint else "")
    return None


def set_password(config: Config, name: str, password_hash: str) -> None:
    if name not in config.data["users"]:
        raise ConfigError("no such user", key=f"users.{name}")
    _users(config)[name]["password"] = password_hash


def add_app_password(config: Config, user: str, name: str, password: str) -> None:
    """Add app password NAME (a device) to USER: hashed, with the time it was made. A
    change of the user's own password leaves it; deleting the user deletes it."""
    from appliance.smtpd.auth import hash_password

    entry = config.data["users"].get(user)
    if entry is None:
        raise ConfigError("no such user", key=f"users.{user}")
    if not entry["password"]:
        raise ConfigError("the user has no password and cannot log in; set one first "
                          f"(appliance user passwd {user})", key=f"users.{user}")
    if not app_passwords.NAME_RE.match(name):
        raise ConfigError(f"bad app password name {name!r}; must be "
                          f"{app_passwords.NAME_ALLOWED}", key=f"users.{user}.app_passwords")
    have = app_passwords.entries(entry["app_passwords"])
    if any(p.name == name for p in have):
        raise ConfigError(f"{user} already has an app password named {name}; remove it "
                          "first to make a new one", key=f"users.{user}.app_passwords")
    if len(have) >= app_passwords.MAX_PER_USER:
        raise ConfigError(f"{user} already has {len(have)} app passwords, the most a user "
                          "may have; remove one first", key=f"users.{user}.app_passwords")
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = app_passwords.AppPassword(name, created,
                                    hash_password(password, app_passwords.HASH_ROUNDS))
    _users(config)[user]["app_passwords"] = [p.entry() for p in have] + [new.entry()]


def remove_app_password(config: Config, user: str, name: str) -> None:
    entry = config.data["users"].get(user)
    if entry is None:
        raise ConfigError("no such user", key=f"users.{user}")
    have = app_passwords.entries(entry["app_passwords"])
    if not any(p.name == name for p in have):
        raise ConfigError(f"{user} has no app password named {name}",
                          key=f"users.{user}.app_passwords")
    kept = [p.entry() for p in have if p.name != name]
    table = _users(config)[user]
    if kept:
        table["app_passwords"] = kept
    else:
        del table["app_passwords"]


def add_entry(config: Config, table: str, name: str, fields: dict[str, object]) -> None:
    """Add [table.name] with `fields`; validation (names, references) happens on commit."""
    check_name(name, table)
    doc = config.document
    if table not in doc:
        doc.add(table, tomlkit.table(is_super_table=True))
    if name in doc[table]:
        raise ConfigError("already exists", key=f"{table}.{name}")
    entry = tomlkit.table()
    for key, value in fields.items():
        entry.add(key, value)
    doc[table].add(name, entry)


def delete_entry(config: Config, table: str, name: str) -> None:
    doc = config.document
    if table not in doc or name not in doc[table]:
        raise ConfigError("no such entry", key=f"{table}.{name}")
    del doc[table][name]


def change_members(config: Config, group: str, add: Sequence[str] = (),
                   remove: Sequence[str] = ()) -> None:
    """Add users to and remove users from [groups.GROUP]'s members, keeping their order;
    validation (each must be a user) happens on commit."""
    if group not in config.data["groups"]:
        raise ConfigError("no such group", key=f"groups.{group}")
    members = list(config.data["groups"][group]["members"])
    members += [u for u in add if u not in members]
    members = [m for m in members if m not in remove]
    config.document["groups"][group]["members"] = members
