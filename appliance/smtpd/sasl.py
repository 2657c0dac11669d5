"""SMTP AUTH (RFC 4954): the PLAIN and LOGIN exchanges and what follows a verdict.

aiosmtpd calls `auth_<MECHANISM>(server, args)` on the handler; the handler passes the
call here. An exchange reads the client's answers (inline after the mechanism or asked
for with a 334 challenge), decodes them, and yields a login and password, or None after
sending the 501/535 that ends a malformed exchange. `authenticate` checks the password
against the users' hashes (appliance.smtpd.auth, off the event loop) and then:

- on success marks the connection as our user's, switches it to the authenticated
  chain (earlier naughty marks no longer count) and runs the auth hooks;
- on failure logs it, records it in the ban store (appliance.security.bans), waits the
  delay the store says (it grows with each failure of the address), runs the auth hooks
  (the auth plugin counts failures and may hang up) and answers 535, or 421 and hangs
  up when this failure banned the address.

A banned address is refused at connect (`banned`), before the greeting, on every port.
Logins to an account being guessed at from many addresses wait the account delay first.
The store failing is logged and passed over: it slows guessers, it must never be why
our own users cannot log in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from appliance.security.bans import BanStore, format_duration
from appliance.smtpd import replies
from appliance.smtpd.auth import PasswordChecker
from appliance.smtpd.peers import AUTHENTICATED

if TYPE_CHECKING:
    from appliance.security.bans import Verdict
    from appliance.smtpd.hooks import Connection
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


async def banned(conn: Connection, bans: BanStore | None) -> str | None:
    """The 421 for a banned client (logged with the ban), or None."""
    if bans is None:
        return None
    try:
        ban = await asyncio.to_thread(bans.banned, conn.remote_ip)
    except sqlite3.Error as e:
        log.warning("%s %s ban store unavailable, not checked: %s", conn.daemon,
                    conn.remote_ip, e)
        return None
    if ban is None:
        return None
    left = ban.left(time.time())
    shown = "until unbanned" if left is None else f"for {format_duration(left)}"
    log.warning("%s %s refused: banned %s (%s)", conn.daemon, conn.remote_ip, shown,
                ban.reason)
    return replies.BANNED.format(ip=conn.remote_ip, left=shown, reason=ban.reason)


async def _account_delay(conn: Connection, bans: BanStore | None, login: str) -> None:
    if bans is None or bans.exempt(conn.remote_ip):
        return
    try:
        delay = await asyncio.to_thread(bans.account_delay, login)
    except sqlite3.Error as e:
        log.warning("%s %s ban store unavailable: %s", conn.daemon, conn.remote_ip, e)
        return
    if delay:
        log.info("%s %s AUTH for %r slowed by %gs: the account is being guessed at",
                 conn.daemon, conn.remote_ip, login[:64], delay)
        await asyncio.sleep(delay)


async def _failed(conn: Connection, bans: BanStore | None, login: str) -> Verdict | None:
    if bans is None:
        return None
    try:
        return await asyncio.to_thread(bans.failed, conn.remote_ip, conn.daemon, login)
    except sqlite3.Error as e:
        log.warning("%s %s failure not recorded in the ban store: %s", conn.daemon,
                    conn.remote_ip, e)
        return None


async def authenticate(server: SMTPServer, passwords: PasswordChecker,
                       bans: BanStore | None, login: bytes, password: bytes) -> AuthResult:
    """Check the password and act on the verdict (see the module docstring)."""
    conn = server.conn
    assert conn is not None and conn.pipeline is not None and conn.pipelines is not None
    # Banned meanwhile (by a failure on another of its connections): hung up on, before
    # any password is tried
    if (refusal := await banned(conn, bans)) is not None:
        await server.push(refusal)
        server.close_soon()
        return handled()
    shown = login.decode(errors="replace")
    await _account_delay(conn, bans, shown)
    found = await passwords.check(login, password)
    if found is None:
        log.warning("%s %s AUTH failed for %r", conn.daemon, conn.remote_ip, shown[:64])
        verdict = await _failed(conn, bans, shown)
        await asyncio.sleep(max(passwords.failure_delay, verdict.delay if verdict else 0))
        if verdict is not None and verdict.ban is not None:
            ban = verdict.ban
            length = format_duration((ban.until or ban.since) - ban.since)
            log.warning("%s %s banned for %s: %s (last user %r)", conn.daemon,
                        conn.remote_ip, length, ban.reason, shown[:64])
            await server.push(replies.AUTH_BANNED.format(ip=conn.remote_ip, left=length))
            server.close_soon()
            return handled()
        result = await conn.pipeline.run("auth", conn, shown, False)
        if result.rejects:
            await server.push(result.reply or replies.AUTH_FAILED)
            if result.verdict.disconnects:
                server.close_soon()
            return handled()
        return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
    user = found.user  # the real user, also for an app password
    # a success says so, naming the app password: never read as a failure
    log.info("%s %s AUTH ok for %r as %s%s", conn.daemon, conn.remote_ip, shown[:64],
             user, f" with app-password {found.app_password}" if found.app_password else "")
    conn.auth_user = user
    conn.naughty = None  # our own user: earlier marks (DNSBL, HELO...) no longer count
    conn.peer = AUTHENTICATED
    conn.pipeline = conn.pipelines.for_peer(AUTHENTICATED)
    await conn.pipeline.run("auth", conn, user, True)
    return AuthResult(success=True, message=replies.AUTH_OK,
                      auth_data=LoginPassword(login, b""))
