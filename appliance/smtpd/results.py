"""What a plugin hook returns: a verdict, an optional reply text, and who said it.

qpsmtpd's return codes: DECLINED passes to the next plugin, OK accepts (and ends the hook),
DENY is a 5xx, DENYSOFT a 4xx, the _DISCONNECT variants also hang up. The first verdict
that is not DECLINED wins.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    DECLINED = "declined"
    OK = "ok"
    DENY = "deny"
    DENYSOFT = "denysoft"
    DENY_DISCONNECT = "deny_disconnect"
    DENYSOFT_DISCONNECT = "denysoft_disconnect"

    @property
    def rejects(self) -> bool:
        return self not in (Verdict.DECLINED, Verdict.OK)

    @property
    def disconnects(self) -> bool:
        return self in (Verdict.DENY_DISCONNECT, Verdict.DENYSOFT_DISCONNECT)


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    reply: str = ""  # full reply line ("550 5.7.1 ..."); empty: the stage's default
    plugin: str = ""

    @property
    def rejects(self) -> bool:
        return self.verdict.rejects


DECLINED = Result(Verdict.DECLINED)


def ok(reply: str = "") -> Result:
    return Result(Verdict.OK, reply)


def deny(reply: str) -> Result:
    return Result(Verdict.DENY, reply)


def denysoft(reply: str) -> Result:
    return Result(Verdict.DENYSOFT, reply)


def deny_disconnect(reply: str) -> Result:
    return Result(Verdict.DENY_DISCONNECT, reply)
