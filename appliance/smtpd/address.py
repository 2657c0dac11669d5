"""Envelope addresses: splitting, and qmail spamcontrol address patterns.

Patterns (SME badmailfrom/badrcptto, qmail badmailpatterns): `user@host` matches that
address, `@host` every address at host, and wildcards: `*` any run of characters, `?`
any one character, `[...]` one of a set, `\\x` a literal x. A line starting with `!`
exempts what it matches, whatever other lines say. Case never matters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def split_address(address: str) -> tuple[str, str]:
    """("local", "domain"), lower-cased; the split is at the last @."""
    local, _, domain = address.rpartition("@")
    return local.lower(), domain.lower().rstrip(".")


def mailbox_of(local: str, domain: str, addresses: frozenset[str] | set[str],
               separators: str) -> str | None:
    """The known address local@domain reaches: itself, or user@domain for user-ext@.

    `separators` holds the characters that may start an extension ("+-": user+ext@ and
    user-ext@). As Postfix and Dovecot split (recipient_delimiter): the extension starts
    at the first of them, so mary-ann+news@ is looked up as mary@, never as mary-ann@.
    """
    address = f"{local}@{domain}"
    if address in addresses:
        return address
    cut = next((i for i, c in enumerate(local) if c in separators), -1) if separators else -1
    if cut > 0:
        base = f"{local[:cut]}@{domain}"
        if base in addresses:
            return base
    return None


def qualify_postmaster(address: str, domain: str) -> str:
    """RFC 5321 4.5.1: RCPT TO:<postmaster>, with no domain and in any case, must be
    accepted; it is postmaster@ the primary domain. No other bare local part is."""
    if address.lower() == "postmaster" and domain:
        return f"postmaster@{domain}"
    return address


def _glob_to_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class AddressPatterns:
    """A compiled list of spamcontrol patterns."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.domains: set[str] = set()
        deny: list[str] = []
        allow: list[str] = []
        for raw in lines:
            line = raw.strip().lower()
            if not line or line.startswith("#"):
                continue
            target = deny
            if line.startswith("!"):
                target, line = allow, line[1:]
            if target is deny and not any(c in line for c in "*?[\\"):
                if line.startswith("@"):
                    self.domains.add(line[1:])
                else:
                    self.exact.add(line)
                continue
            if line.startswith("@") and not any(c in line for c in "*?[\\"):
                line = "*" + line
            target.append(_glob_to_regex(line))
        self._deny = re.compile("|".join(f"(?:{p})" for p in deny)) if deny else None
        self._allow = re.compile("|".join(f"(?:{p})" for p in allow)) if allow else None

    def __bool__(self) -> bool:
        return bool(self.exact or self.domains or self._deny)

    def matches(self, address: str) -> bool:
        address = address.lower()
        if self._allow is not None and self._allow.fullmatch(address):
            return False
        if address in self.exact:
            return True
        if split_address(address)[1] in self.domains:
            return True
        return bool(self._deny is not None and self._deny.fullmatch(address))
