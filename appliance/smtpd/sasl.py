"""SMTP AUTH (RFC 4954): the PLAIN and LOGIN exchanges and what follows a verdict.

aiosmtpd calls `auth_<MECHANISM>(server, args)` on the handler; the handler passes the
call here. An exchange reads the client's answers (inline after the mechanism or asked
for with a 334 challenge), decodes them, and yields a login and password, or None after
sending the 501/535 that ends a malformed exchange. `authenticate` checks the password
against the users' hashes (appliance.smtpd.auth, off the event loop) and then:

- on success marks the connection as our user's, switches it to the authenticated
  chain (earlier naughty marks no longer count) and runs the auth hooks;
- on failure logs it, waits the failure delay (slows guessing), runs the auth hooks
  (the auth plugin counts failures and may hang up) and answers 535.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from appliance.smtpd import replies
from appliance.smtpd.auth import PasswordChecker
from appliance.smtpd.peers import AUTHENTICATED

if TYPE_CHECKING:
    from appliance.smtpd.server import SMTPServer

# the AUTH failure lines keep the name they were logged under before this module (the
# daemons log "NAME: message"): whatever reads the log for failed logins keeps working
log = logging.getLogger("appliance.smtpd.handler")


def handled() -> AuthResult:
    """The exchange is over and its reply was sent: aiosmtpd must send nothing more."""
    return AuthResult(success=False, handled=True)


class SaslError(Exception):
    """A client's AUTH answer that cannot be used; `reply` is the line to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def decode(text: str) -> bytes:
    """A base64 answer, strictly (no stray characters); SaslError if it is not one."""
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise SaslError(replies.AUTH_BAD_BASE64) from None


def split_plain(blob: bytes) -> tuple[bytes, bytes]:
    """(login, password) from a PLAIN answer: authzid NUL authcid NUL password.

    RFC 4616: an authorization identity other than the login would mean acting as
    someone else, which nobody here may do; the same name in another case is the login.
    """
    try:
        authz, login, password = blob.split(b"\x00")
    except ValueError:
        raise SaslError(replies.AUTH_BAD_PLAIN) from None
    if authz and authz.lower() != login.lower():
        raise SaslError(replies.AUTHZID_REFUSED)
    return login, password


async def _first_answer(server: SMTPServer, args: list[str], challenge: str) -> bytes | None:
    """The client's first answer: inline after the mechanism, or asked for.

    None means the exchange is over (aborted or undecodable; the reply was sent).
    """
    if len(args) == 1:
        blob = await server.challenge_auth(challenge)
        return None if blob is MISSING else blob
    try:
        return decode(args[1])
    except SaslError as e:
        await server.push(e.reply)
        return None


async def plain(server: SMTPServer, args: list[str]) -> tuple[bytes, bytes] | None:
    """AUTH PLAIN [initial-response]: (login, password), or None once refused."""
    blob = await _first_answer(server, args, "")
    if blob is None:
        return None
    try:
        return split_plain(blob)
    except SaslError as e:
        await server.push(e.reply)
        return None


async def login(server: SMTPServer, args: list[str]) -> tuple[bytes, bytes] | None:
    """AUTH LOGIN [initial-response]: user name, then password, each asked for."""
    user = await _first_answer(server, args, server.AuthLoginUsernameChallenge)
    if user is None:
        return None
    password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
    if password is MISSING:
        return None
    return user, password


async def authenticate(server: SMTPServer, passwords: PasswordChecker, login: bytes,
                       password: bytes) -> AuthResult:
    """Check the password and act on the verdict (see the module docstring)."""
    conn = server.conn
    assert conn is not None and conn.pipeline is not None and conn.pipelines is not None
    user = await passwords.verify(login, password)
    if user is None:
        shown = login.decode(errors="replace")
        log.warning("%s %s AUTH failed for %r", conn.daemon, conn.remote_ip, shown[:64])
        await asyncio.sleep(passwords.failure_delay)
        result = await conn.pipeline.run("auth", conn, shown, False)
        if result.rejects:
            await server.push(result.reply or replies.AUTH_FAILED)
            if result.verdict.disconnects:
                server.close_soon()
            return handled()
        return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
    conn.auth_user = user
    conn.naughty = None  # our own user: earlier marks (DNSBL, HELO...) no longer count
    conn.peer = AUTHENTICATED
    conn.pipeline = conn.pipelines.for_peer(AUTHENTICATED)
    await conn.pipeline.run("auth", conn, user, True)
    return AuthResult(success=True, message=replies.AUTH_OK,
                      auth_data=LoginPassword(login, b""))
