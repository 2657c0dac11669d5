"""What a plugin hook returns: a verdict, an optional reply text, and who said it.

qpsmtpd's return codes: DECLINED passes to the next plugin, OK accepts (and ends the hook),
DENY is a 5xx, DENYSOFT a 4xx, the _DISCONNECT variants also hang up. The first verdict
that is not DECLINED wins. NAUGHTY is qpsmtpd's `reject naughty`: the connection is
marked and the pipeline carries on; the naughty plugin refuses it at a later stage so
the log shows sender and recipients (without the naughty plugin in the chain it is an
immediate DENY).
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
    NAUGHTY = "naughty"

    @property
    def rejects(self) -> bool:
        return self not in (Verdict.DECLINED, Verdict.OK, Verdict.NAUGHTY)

    @property
    def disconnects(self) -> bool:
        return self in (Verdict.DENY_DISCONNECT, Verdict.DENYSOFT_DISCONNECT)

    @property
    def temporary(self) -> bool:
        return self in (Verdict.DENYSOFT, Verdict.DENYSOFT_DISCONNECT)


def outcome(reply: str, temporary: bool = False) -> str:
    """The word the transaction log, status and the console use for a refusal: a 4xx
    reply is "deferred" (the client retries), a 5xx "rejected". Without a reply code,
    `temporary` decides. The one place this is decided."""
    code = reply.strip().strip('"')[:1]
    if code in ("4", "5"):
        return "deferred" if code == "4" else "rejected"
    return "deferred" if temporary else "rejected"


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    reply: str = ""  # full reply line ("550 5.7.1 ..."); empty: the stage's default
    plugin: str = ""

    @property
    def rejects(self) -> bool:
        return self.verdict.rejects

    @property
    def outcome(self) -> str:
        """ "deferred" or "rejected", from the reply code (see `outcome`)."""
        return outcome(self.reply, self.verdict.temporary)


DECLINED = Result(Verdict.DECLINED)


def ok(reply: str = "") -> Result:
    return Result(Verdict.OK, reply)


def deny(reply: str) -> Result:
    return Result(Verdict.DENY, reply)


def denysoft(reply: str) -> Result:
    return Result(Verdict.DENYSOFT, reply)


def deny_disconnect(reply: str) -> Result:
    return Result(Verdict.DENY_DISCONNECT, reply)


def denysoft_disconnect(reply: str) -> Result:
    return Result(Verdict.DENYSOFT_DISCONNECT, reply)


def naughty(reply: str) -> Result:
    return Result(Verdict.NAUGHTY, reply)


def refuse(mode: str, reply: str) -> Result:
    """A refusal as a plugin's `reject` setting says: deny, naughty or off (log only)."""
    if mode == "naughty":
        return naughty(reply)
    if mode == "deny":
        return deny(reply) if reply[:1] == "5" else denysoft(reply)
    return DECLINED
