"""Talking to spamd, through aiospamc, in one place.

aiospamc logs every request at INFO through loguru (to stderr): that is switched off
here, and its many exception types become one `SpamdError`, so callers (the smtpd
plugin, the learner, `appliance status`) handle exactly one failure.
"""

from __future__ import annotations

from pathlib import Path

import aiospamc
from aiospamc.exceptions import ClientException, TimeoutException
from loguru import logger

logger.disable("aiospamc")


class SpamdError(Exception):
    """spamd could not be reached, timed out or answered with an error."""


def _error(e: Exception) -> SpamdError:
    return SpamdError(f"{type(e).__name__}: {e}".rstrip(": "))


async def symbols(message: bytes, socket: Path, timeout: float) -> tuple[float, list[str]]:
    """The score and the names of the rules that hit."""
    try:
        response = await aiospamc.symbols(message, socket_path=socket,
                                          timeout=aiospamc.Timeout(total=timeout))
    except (ClientException, TimeoutException, OSError) as e:
        raise _error(e) from e
    spam = response.headers.spam
    if spam is None:
        raise SpamdError("spamd's answer has no Spam header")
    body = bytes(response.body or b"").decode("ascii", "replace")
    return float(spam.score), [t.strip() for t in body.split(",") if t.strip()]


async def tell(message: bytes, kind: str, socket: Path, timeout: float) -> None:
    """Learn the message as 'spam' or 'ham' into spamd's Bayes database. spamd answers
    EX_OK even when it learned nothing (Bayes off, its lock busy); only a `DidSet:
    local` header means the message is in the database now."""
    try:
        response = await aiospamc.tell(message, kind, set_action="local",
                                       socket_path=socket,
                                       timeout=aiospamc.Timeout(total=timeout))
    except (ClientException, TimeoutException, OSError) as e:
        raise _error(e) from e
    did_set = response.headers.did_set
    if did_set is None or not did_set.local:
        raise SpamdError("spamd did not learn it (is use_bayes applied?)")


async def ping(socket: Path, timeout: float = 5) -> None:
    try:
        await aiospamc.ping(socket_path=socket, timeout=aiospamc.Timeout(total=timeout))
    except (ClientException, TimeoutException, OSError) as e:
        raise _error(e) from e
