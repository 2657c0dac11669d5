"""Which addresses exist here and who gets their mail: derived from appliance.toml alone.

`addresses()` is the one answer; the SMTP daemons (recipient checks), Postfix (virtual
aliases) and the config check of smtpd.bcc (its archive address must exist) all use
it. It lives in the config layer so that check can ask it; appliance.accounts, which
edits the accounts, re-exports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # load.py imports this module: the type only, no import at run time
    from appliance.config.load import Config

# Addresses every domain has (RFC 2142, admin@, and the DMARC report address print-dns
# publishes), delivered to system.admin; their names are reserved (schema.RESERVED_NAMES).
ROLE_ADDRESSES = ("postmaster", "abuse", "hostmaster", "webmaster", "admin", "administrator",
                  "dmarc-feedback")
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
