"""SMTP AUTH: checks a login and password against the users' bcrypt hashes.

The hashes are the ones Dovecot uses ({BLF-CRYPT} in appliance.toml), so one password
works for IMAP, POP3 and SMTP. bcrypt is slow by design: it runs in a worker thread so
the event loop keeps serving other clients. Unknown users cost the same time as known
ones, so timing does not tell which logins exist.

App passwords (appliance.config.app_passwords) log in too, as the user: `check()` says
which one did. Every login costs the same: the user's own hash, then one app-password
hash per slot any user has in use (a dummy where this user has none, or the user is
unknown), all of them compared whatever matched first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import bcrypt

from appliance.config.app_passwords import HASH_ROUNDS

SCHEME = "{BLF-CRYPT}"
# Compared against when the user does not exist, to spend the same time.
_DUMMY = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))
# The same, at the app passwords' cost: a slot this user does not use.
_APP_DUMMY = SCHEME + bcrypt.hashpw(b"not a password", bcrypt.gensalt(HASH_ROUNDS)).decode()


def hash_password(password: str, rounds: int = 10) -> str:
    """A Dovecot-compatible {BLF-CRYPT} hash."""
    if not password:
        raise ValueError("empty password")
    if len(password.encode()) > 72:
        raise ValueError("password longer than 72 bytes (bcrypt's limit)")
    return SCHEME + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def check_password(password: bytes, stored: str) -> bool:
    if not stored.startswith(SCHEME) or len(password) > 72:
        bcrypt.checkpw(b"x", _DUMMY)
        return False
    try:
        return bcrypt.checkpw(password, stored[len(SCHEME):].encode())
    except ValueError:
        return False


@dataclass(frozen=True)
class Login:
    user: str  # the real user, whichever password it was
    app_password: str = ""  # the app password's name; "": the user's own password


class PasswordChecker:
    def __init__(self, users: dict[str, str], local_domains: list[str],
                 failure_delay: float = 1.0,
                 app_passwords: dict[str, dict[str, str]] | None = None) -> None:
        self.users = {name.lower(): h for name, h in users.items()}
        self.domains = frozenset(d.lower() for d in local_domains)
        self.failure_delay = failure_delay
        # user -> app password name -> hash; a user without a password has none
        self.app_passwords = {name.lower(): dict(apps)
                              for name, apps in (app_passwords or {}).items()
                              if self.users.get(name.lower())}
        self.slots = max((len(a) for a in self.app_passwords.values()), default=0)

    def _username(self, login: bytes) -> str | None:
        try:
            text = login.decode("utf-8").strip().lower()
        except UnicodeDecodeError:
            return None
        local, at, domain = text.rpartition("@")
        if at:
            return local if domain in self.domains else None
        return text

    async def verify(self, login: bytes, password: bytes) -> str | None:
        """The user name if the password (or one of the user's app passwords) is right,
        else None."""
        found = await self.check(login, password)
        return found.user if found else None

    async def check(self, login: bytes, password: bytes) -> Login | None:
        """Who logged in, and with which app password, or None."""
        name = self._username(login)
        return await asyncio.to_thread(self._check, name or "", password)

    def _check(self, name: str, password: bytes) -> Login | None:
        stored = self.users.get(name, "")
        own = check_password(password, stored)
        apps = list(self.app_passwords.get(name, {}).items())
        apps += [("", _APP_DUMMY)] * (self.slots - len(apps))
        # every slot is compared, also after a match: the time says nothing
        matched = [app for app, h in apps if check_password(password, h) and app]
        if not name or not stored:
            return None
        if own:
            return Login(name)
        return Login(name, matched[0]) if matched else None
