"""App passwords: extra passwords of a user, one per device, for IMAP, POP3 and SMTP
submission only (never the webmail), each named, revocable on its own.

They are kept in appliance.toml as users.NAME.app_passwords, a list of strings
"NAME CREATED HASH": the device's name ([A-Za-z0-9._-]), when it was made (UTC,
2025-01-31T12:00:00Z) and a {BLF-CRYPT} hash, as the user's own password. The schema
checks the list with `problem()`; Dovecot's passdbs, the SMTP daemons' settings and the
webmail's refusal list all read it through `entries()`.

A generated app password is 16 random lower-case letters and digits (about 82 bits), in
4 groups of 4 for typing on a phone. With that much entropy a slow hash adds nothing
against guessing the stored hash, so it is hashed with bcrypt's cost HASH_ROUNDS (a few
milliseconds) rather than the users' own 10: checking a user's ten costs less than one
main password does.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
NAME_ALLOWED = "letters, digits, '.', '_' or '-', at most 32"
MAX_PER_USER = 10
HASH_ROUNDS = 5
CREATED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
SCHEME = "{BLF-CRYPT}"
# the whole hash: it is rendered into passwd-file lines, where a ":" would add fields
BCRYPT_RE = re.compile(r"\{BLF-CRYPT\}\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
ALPHABET = string.ascii_lowercase + string.digits
GROUPS, GROUP_LEN = 4, 4


@dataclass(frozen=True)
class AppPassword:
    name: str
    created: str  # UTC, ISO 8601 with Z
    hash: str  # {BLF-CRYPT}$2b$...

    def entry(self) -> str:
        """Its form in appliance.toml."""
        return f"{self.name} {self.created} {self.hash}"


def parse(item: str) -> AppPassword | str:
    """One "NAME CREATED HASH" string: the app password, or what is wrong with it."""
    parts = item.split(" ")
    if len(parts) != 3:
        return "an entry is not \"NAME CREATED HASH\""
    name, created, hashed = parts
    if not NAME_RE.match(name):
        return f"app password name {name!r}: must be {NAME_ALLOWED}"
    if not CREATED_RE.match(created):
        return f"app password {name}: created {created!r} is not a UTC time such as " \
               "2025-01-31T12:00:00Z"
    if not BCRYPT_RE.fullmatch(hashed):
        return f"app password {name}: not a {SCHEME} hash"
    return AppPassword(name, created, hashed)


def problem(values: list[str]) -> str | None:
    """What is wrong with a users.NAME.app_passwords list, or None. Never shows a hash."""
    names: set[str] = set()
    for item in values:
        parsed = parse(item)
        if isinstance(parsed, str):
            return parsed
        if parsed.name in names:
            return f"app password {parsed.name}: named twice"
        names.add(parsed.name)
    if len(values) > MAX_PER_USER:
        return f"{len(values)} app passwords; at most {MAX_PER_USER} per user"
    return None


def entries(values: list[str]) -> list[AppPassword]:
    """The app passwords of a checked list (the schema refused any bad one)."""
    out = []
    for item in values:
        parsed = parse(item)
        assert not isinstance(parsed, str), parsed
        out.append(parsed)
    return out


def generate() -> str:
    """A new app password: xxxx-xxxx-xxxx-xxxx, lower-case letters and digits."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LEN))
                    for _ in range(GROUPS))
