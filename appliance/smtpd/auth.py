"""SMTP AUTH: checks a login and password against the users' bcrypt hashes.

The hashes are the ones Dovecot uses ({BLF-CRYPT} in appliance.toml), so one password
works for IMAP, POP3 and SMTP. bcrypt is slow by design: it runs in a worker thread so
the event loop keeps serving other clients. Unknown users cost the same time as known
ones, so timing does not tell which logins exist.
"""

from __future__ import annotations

import asyncio

import bcrypt

SCHEME = "{BLF-CRYPT}"
# Compared against when the user does not exist, to spend the same time.
_DUMMY = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))


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


class PasswordChecker:
    def __init__(self, users: dict[str, str], local_domains: list[str],
                 failure_delay: float = 1.0) -> None:
        self.users = {name.lower(): h for name, h in users.items()}
        self.domains = frozenset(d.lower() for d in local_domains)
        self.failure_delay = failure_delay

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
        """The user name if the password is right, else None."""
        name = self._username(login)
        stored = self.users.get(name or "", "")
        ok = await asyncio.to_thread(check_password, password, stored)
        return name if ok and name else None
