"""What a plugin's settings must be beyond each key's own check, and the parsers for them.

A key's type, bounds and pattern are the schema's (`Key.check`) and hold always. These
rules compare keys with each other, look deeper into a value than the schema's pattern,
or check against the accounts, and hold only while the plugin runs: its `enabled` key is
true, or it has none (appliance.smtpd.peers loads nothing else). They are written once,
here: `appliance.config.load` refuses a bad appliance.toml with them (file, line, key),
the daemons' plugin loader refuses a settings file with them, and the plugins parse
their values with the same functions, trusting what was checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable, no colon
MASK_ALLOWED = "numbers 1-255 joined by '-', like 8-16-64-128"


@dataclass(frozen=True)
class Problem:
    """KEY of the plugin's section holds VALUE, which REASON says is wrong."""

    key: str
    reason: str
    value: Any


@dataclass(frozen=True)
class Mailboxes:
    """What an address of ours is checked against; lower-case throughout."""

    primary_domain: str
    local_domains: frozenset[str]  # every domain we take mail for
    delegated_domains: frozenset[str]  # of those, the ones passed on to another server
    addresses: frozenset[str]  # every deliverable address here (accounts.addresses)


# ---- parsers: the plugins use them on checked values ---------------------------------------


def parse_zones(entries: Iterable[str]) -> list[tuple[str, str]]:
    """A DNS list's `zone` or `zone:extra` entries as [(zone, extra)], in order, the zone
    lower-cased without a final dot, a repeated zone dropped (its first entry wins). The
    split is at the first colon: the extra part (a message, a bit mask) may hold more.
    That each starts with a DNS zone is the schema's check of the `zones` keys."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in entries:
        zone, _, extra = entry.strip().partition(":")
        zone = zone.strip().lower().rstrip(".")
        if zone not in seen:
            seen.add(zone)
            out.append((zone, extra.strip()))
    return out


def parse_mask(text: str) -> int:
    """The OR of uribl's bit mask 'a-b-c' (or 'a,b,c'); 0 means the zone has none.
    ValueError if a part is not a number 1-255."""
    mask = 0
    for token in re.split(r"[-,\s]+", text.strip()):
        if not token:
            continue
        if not token.isdigit() or not 1 <= int(token) <= 255:
            raise ValueError(f"bit mask {text!r} must be {MASK_ALLOWED}")
        mask |= int(token)
    return mask


def archive_address(user: str, primary_domain: str) -> str:
    """The address bcc's `user` names: an address, or a user name at the primary domain.
    ValueError if it is neither."""
    user = user.strip()
    if not user or any(c.isspace() for c in user) or user.count("@") > 1:
        raise ValueError("not a user name or an address")
    if "@" not in user:
        user = f"{user}@{primary_domain}"
    local, _, domain = user.rpartition("@")
    if not local or not domain.rstrip("."):
        raise ValueError("not a user name or an address")
    return user


# ---- the rules, one per plugin that has one -----------------------------------------------


def _headers(values: Mapping[str, Any], mailboxes: Callable[[], Mailboxes]) -> Problem | None:
    for name in values["required"]:  # the schema takes any word: a field name is stricter
        if not HEADER_NAME.match(name):
            return Problem("required", f"{name!r} is not a header name", values["required"])
    return None


def _dmarc(values: Mapping[str, Any], mailboxes: Callable[[], Mailboxes]) -> Problem | None:
    sender = values["report_sender"]
    if sender and "@" not in sender:  # the schema takes any one line
        return Problem("report_sender", "not an address", sender)
    return None


def _uribl(values: Mapping[str, Any], mailboxes: Callable[[], Mailboxes]) -> Problem | None:
    for zone, extra in parse_zones(values["zones"]):
        try:
            parse_mask(extra)
        except ValueError:
            return Problem("zones", f"bit mask {extra!r} of {zone} must be {MASK_ALLOWED}",
                           values["zones"])
    return None


def _bcc(values: Mapping[str, Any], mailboxes: Callable[[], Mailboxes]) -> Problem | None:
    user = values["user"]
    here = mailboxes()  # built once, when a Bcc plugin runs at all
    try:
        address = archive_address(user, here.primary_domain)
    except ValueError as e:
        return Problem("user", str(e), user)
    local, _, domain = address.rpartition("@")
    domain = domain.lower().rstrip(".")
    # A copy Postfix cannot deliver would defer every message (the hand-off queues all
    # recipients or none): refuse the setting instead. A file already on disk with it is
    # refused by every command too, so the hint names the by-hand way as well.
    if (domain in here.local_domains and domain not in here.delegated_domains
            and address.lower() not in here.addresses):
        return Problem("user", f"{address} does not exist here; add the user first "
                       f"(appliance user add {local.lower()}, or a [users.{local.lower()}] "
                       "table when editing appliance.toml by hand) or set smtpd.bcc.user",
                       user)
    return None


def _greylisting(values: Mapping[str, Any], mailboxes: Callable[[], Mailboxes]
                 ) -> Problem | None:
    if values["grey_timeout"] <= values["black_timeout"]:
        return Problem("grey_timeout", "must be longer than black_timeout, or no retry "
                       "could ever pass", values["grey_timeout"])
    return None


RULES: dict[str, Callable[[Mapping[str, Any], Callable[[], Mailboxes]], Problem | None]] = {
    "headers": _headers,
    "dmarc": _dmarc,
    "uribl": _uribl,
    "bcc": _bcc,
    "greylisting": _greylisting,
}


def problem(name: str, values: Mapping[str, Any], mailboxes: Callable[[], Mailboxes]
            ) -> Problem | None:
    """What is wrong with plugin NAME's section VALUES (its keys, validated by the schema),
    or None. MAILBOXES is asked only by a rule that needs the accounts."""
    rule = RULES.get(name)
    return rule(values, mailboxes) if rule else None


def runs(values: Mapping[str, Any]) -> bool:
    """Whether a plugin with this section runs: its `enabled` key, or always."""
    return bool(values.get("enabled", True))
