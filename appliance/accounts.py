"""Accounts in appliance.toml: who exists, and where each address delivers.

Edits go through tomlkit so the user's comments and layout survive. Each change is
validated and applied before the file is written: a change that fails leaves both the
file and the running services as they were.

`addresses()` is the one answer to "which addresses exist here and who gets their
mail"; the SMTP daemons (recipient checks) and Postfix (virtual aliases) both use it.
"""

from __future__ import annotations

import tomlkit
from tomlkit.items import Table

from appliance.config import Config, ConfigError
from appliance.config.schema import USERNAME_RE, collection

# Addresses every domain has (RFC 2142), delivered to system.admin unless an account
# or pseudonym of that name exists.
ROLE_ADDRESSES = ("postmaster", "abuse")
EVERYONE = "everyone"


def group_recipients(config: Config, name: str) -> list[str]:
    """User names that get the group's mail: members minus the exclusions."""
    groups = config.data["groups"]
    group = groups[name]
    excluded = set(group["exclude_users"])
    for other in group["exclude_groups"]:
        excluded.update(groups[other]["members"])
    return [m for m in group["members"] if m not in excluded]


def addresses(config: Config) -> dict[str, list[str]]:
    """Every deliverable address here -> the user mailboxes (user@primary) it reaches.

    Users, groups (minus exclusions), pseudonyms, everyone@ (SME EveryoneEmail),
    postmaster@/abuse@ (system.admin), and "@domain" for the catch-all when
    delivery.unknown_user names an account (SME EmailUnknownUser). Forwarding is not
    here: Postfix does it after the address is accepted.
    """
    d = config.data
    primary = d["system"]["domain"]
    users, groups = d["users"], d["groups"]
    accounts: dict[str, list[str]] = {u: [f"{u}@{primary}"] for u in users}
    for name in groups:
        accounts[name] = [f"{m}@{primary}" for m in group_recipients(config, name)]
    implicit: dict[str, list[str]] = {}
    if EVERYONE not in accounts:
        implicit[EVERYONE] = [f"{u}@{primary}" for u, e in sorted(users.items())
                              if e["everyone_email"]]
    if config.admin:
        for role in ROLE_ADDRESSES:
            if role not in accounts:
                implicit[role] = [f"{config.admin}@{primary}"]
    # An address whose group has no one left (all excluded, or no members) goes to
    # the admin; with no users at all there is no one, and the address does not exist.
    admin = [f"{config.admin}@{primary}"] if config.admin else []
    out: dict[str, list[str]] = {}

    def add(address: str, targets: list[str]) -> None:
        if targets or admin:
            out[address] = targets or admin

    for domain in config.mailbox_domains:
        for name, targets in (implicit | accounts).items():
            add(f"{name}@{domain}", targets)
    for name, pseudonym in d["pseudonyms"].items():
        targets = accounts[pseudonym["account"]]
        if "@" in name:
            if name.partition("@")[2] in config.mailbox_domains:
                add(name, targets)
        else:
            for domain in config.mailbox_domains:
                add(f"{name}@{domain}", targets)
    unknown = d["delivery"]["unknown_user"]
    if unknown != "returntosender":
        for domain in config.mailbox_domains:
            add(f"@{domain}", accounts[unknown])
    return out


def internal_accounts(config: Config) -> list[str]:
    """Users and groups that the internet may not write to (SME Visible internal)."""
    d = config.data
    return sorted(n for table in (d["users"], d["groups"])
                  for n, e in table.items() if e["visible"] == "internal")


def _users(config: Config) -> Table:
    doc = config.document
    if "users" not in doc:
        users = tomlkit.table(is_super_table=True)
        doc.add("users", users)
    return doc["users"]  # type: ignore[return-value]


def check_name(name: str) -> None:
    if not USERNAME_RE.match(name):
        spec = collection("users")
        assert spec is not None
        raise ConfigError(f"bad user name; must be {spec.name_allowed}", key=f"users.{name}")


def add_user(config: Config, name: str, password_hash: str, full_name: str = "") -> None:
    check_name(name)
    if name in config.data["users"]:
        raise ConfigError("user already exists", key=f"users.{name}")
    entry = tomlkit.table()
    entry.add("password", password_hash)
    if full_name:
        entry.add("full_name", full_name)
    _users(config).add(name, entry)


def delete_user(config: Config, name: str) -> None:
    if name not in config.data["users"]:
        raise ConfigError("no such user", key=f"users.{name}")
    del _users(config)[name]


def set_password(config: Config, name: str, password_hash: str) -> None:
    if name not in config.data["users"]:
        raise ConfigError("no such user", key=f"users.{name}")
    _users(config)[name]["password"] = password_hash  # type: ignore[index]


def add_entry(config: Config, table: str, name: str, fields: dict[str, object]) -> None:
    """Add [table.name] with `fields`; validation (names, references) happens on commit."""
    spec = collection(table)
    assert spec is not None
    if not spec.name_pattern.match(name):
        raise ConfigError(f"bad name; must be {spec.name_allowed}", key=f"{table}.{name}")
    doc = config.document
    if table not in doc:
        doc.add(table, tomlkit.table(is_super_table=True))
    if name in doc[table]:  # type: ignore[operator]
        raise ConfigError("already exists", key=f"{table}.{name}")
    entry = tomlkit.table()
    for key, value in fields.items():
        entry.add(key, value)
    doc[table].add(name, entry)  # type: ignore[union-attr]


def delete_entry(config: Config, table: str, name: str) -> None:
    doc = config.document
    if table not in doc or name not in doc[table]:  # type: ignore[operator]
        raise ConfigError("no such entry", key=f"{table}.{name}")
    del doc[table][name]  # type: ignore[union-attr]
