"""The aiosmtpd handler: turns SMTP commands into pipeline events and verdicts into replies.

Thin on purpose: it builds the event, runs the pipeline, maps the result to a reply,
hands accepted mail to Postfix and writes one terse log line per transaction.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, LoginPassword, Session

from appliance.smtpd import received, replies, storage
from appliance.smtpd.address import qualify_postmaster
from appliance.smtpd.auth import PasswordChecker
from appliance.smtpd.handoff import PostfixHandoff
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.peers import AUTHENTICATED, SUBMISSION_DAEMONS
from appliance.smtpd.pipeline import Pipeline, Pipelines
from appliance.smtpd.results import Result, Verdict, outcome
from appliance.smtpd.server import SMTPServer

log = logging.getLogger("appliance.smtpd.handler")
terse = logging.getLogger("appliance.smtpd.transaction")
_background: set[asyncio.Task[Any]] = set()

EXTENSIONS = ("250-PIPELINING", "250-ENHANCEDSTATUSCODES")


@dataclass
class State:
    """Everything derived from the settings file; swapped whole on reload (SIGHUP)."""

    settings: dict[str, Any]
    pipelines: Pipelines
    passwords: PasswordChecker

    @property
    def primary_domain(self) -> str:
        return str(self.settings["primary_domain"])

    @property
    def max_recipients(self) -> int:
        return int(self.settings["max_recipients"])

    @property
    def queue_dir(self) -> str:
        return str(self.settings["queue_dir"])

    @property
    def queue_min_free(self) -> int:
        return int(self.settings["queue_min_free"])

    @property
    def relay_requires_auth(self) -> bool:
        return bool(self.settings["plugin_settings"]["relay"]["require_auth"])


def _reply(result: Result, default: str) -> str:
    return result.reply or default


def _refuse_recipient(txn: Transaction, address: str, plugin: str, reply: str) -> str:
    txn.rejected.append((address, plugin, reply))
    return reply


class Handler:
    def __init__(self, state: State, handoff: PostfixHandoff) -> None:
        self.state = state
        self.handoff = handoff

    # -- connection ------------------------------------------------------------------

    async def on_connect(self, server: SMTPServer) -> str | None:
        """Run connect hooks; a refusal line ends the session before the greeting."""
        conn = server.conn
        assert conn is not None
        # One set of chains for the connection's life, even across a reload.
        pipelines = self.state.pipelines
        conn.notes["pipelines"] = pipelines
        conn.peer = pipelines.peer_of(conn.remote_ip)
        conn.notes["pipeline"] = pipelines.for_peer(conn.peer)
        received.look_up_client_name(conn, pipelines.ctx.resolver)  # for our Received line
        result = await self._pipeline(conn).run("connect", conn)
        if result.rejects:
            self._log(conn, None, "rejected", result)
            return _reply(result, "554 5.7.1 Connection refused")
        if (conn.relay_client and conn.daemon in SUBMISSION_DAEMONS
                and not self.state.relay_requires_auth):
            server.relax_auth()  # SME RelayRequiresAuth disabled
        return None

    def on_tls(self, server: SMTPServer) -> None:
        conn = server.conn
        assert conn is not None
        conn.tls = True
        conn.tls_version = server.tls_version()

    def on_disconnect(self, server: SMTPServer) -> None:
        conn = server.conn
        assert conn is not None
        received.cancel_lookup(conn)
        self._end_transaction(conn, "aborted")
        chain = self._pipeline(conn)
        if chain.handles("disconnect"):
            task = asyncio.ensure_future(chain.run("disconnect", conn))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def on_unrecognized(self, server: SMTPServer, command: str) -> str:
        conn = server.conn
        assert conn is not None
        result = await self._pipeline(conn).run("unrecognized_command", conn, command)
        if result.rejects:
            if result.verdict.disconnects:
                server.close_soon()
            return _reply(result, replies.UNRECOGNIZED.format(command=command[:32]))
        return replies.UNRECOGNIZED.format(command=command[:32])

    async def on_data(self, server: SMTPServer) -> str | None:
        """DATA, before the 354: a refusal line, or None to go on."""
        conn = server.conn
        assert conn is not None
        txn = conn.notes.get("txn")
        if not isinstance(txn, Transaction):
            return None
        result = await self._pipeline(conn).run("data", conn, txn)
        if result.rejects:
            if result.verdict.disconnects:
                server.close_soon()
            conn.notes.pop("txn", None)
            self._log(conn, txn, "rejected", result)
            server.envelope_reset()
            return _reply(result, "554 5.7.1 Transaction refused")
        return None

    @staticmethod
    def _pipeline(conn: Connection) -> Pipeline:
        return conn.notes["pipeline"]  # type: ignore[return-value]

    # -- aiosmtpd hooks --------------------------------------------------------------

    def handle_STARTTLS(self, server: SMTPServer, session: Session, envelope: Envelope) -> bool:
        assert server.conn is not None
        self.on_tls(server)
        server.conn.helo = ""  # RFC 3207: the client must say EHLO again
        return True

    async def handle_HELO(
        self, server: SMTPServer, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        conn = server.conn
        assert conn is not None
        result = await self._helo(server, conn, hostname, esmtp=False)
        if result is not None:
            return result
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        conn = server.conn
        assert conn is not None
        result = await self._helo(server, conn, hostname, esmtp=True)
        if result is not None:
            return [result]
        session.host_name = hostname
        return responses[:1] + list(EXTENSIONS) + responses[1:]

    async def _helo(
        self, server: SMTPServer, conn: Connection, hostname: str, esmtp: bool
    ) -> str | None:
        self._end_transaction(conn, "aborted")
        conn.helo = hostname
        conn.esmtp = esmtp
        result = await self._pipeline(conn).run("helo", conn, hostname)
        if result.rejects:
            if result.verdict.disconnects:
                server.close_soon()
            return _reply(result, "550 5.7.1 HELO refused")
        return None

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        conn = server.conn
        assert conn is not None
        self._end_transaction(conn, "aborted")
        if self.state.queue_dir and not storage.has_room(
                self.state.queue_dir, self.state.queue_min_free,
                storage.declared_size(mail_options)):
            log.warning("%s: MAIL refused, the queue's file system is short of space",
                        conn.remote_ip)
            return replies.INSUFFICIENT_STORAGE
        # aiosmtpd reports the null sender (bounces) as "<>"; plugins and the hand-off
        # see it as "" (envelope.mail_from must stay non-empty for aiosmtpd's own checks).
        txn = Transaction(sender="" if address == "<>" else address)
        result = await self._pipeline(conn).run("mail", conn, txn, txn.sender)
        if result.rejects:
            self._log(conn, txn, "rejected", result)
            if result.verdict.disconnects:
                server.close_soon()
            return _reply(result, "550 5.7.1 Sender refused")
        conn.notes["txn"] = txn
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.OK_SENDER

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        conn = server.conn
        assert conn is not None
        txn = conn.notes.get("txn")
        assert isinstance(txn, Transaction)
        address = qualify_postmaster(address, self.state.primary_domain)
        if len(txn.recipients) >= self.state.max_recipients:
            return _refuse_recipient(txn, address, "smtpd", replies.TOO_MANY_RECIPIENTS)
        result = await self._pipeline(conn).run("rcpt", conn, txn, address)
        if result.verdict is Verdict.OK:
            txn.recipients.append(address)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return result.reply or replies.OK_RECIPIENT
        if result.verdict is Verdict.DECLINED:
            result = Result(Verdict.DENYSOFT, replies.NO_DECISION, "-")
        if result.verdict.disconnects:
            server.close_soon()
        return _refuse_recipient(txn, address, result.plugin,
                                 result.reply or "550 5.7.1 Recipient refused")

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        server.data_complete()
        try:
            return await self._data(server, envelope)
        finally:
            server.data_resume()  # before aiosmtpd pushes our reply

    async def _data(self, server: SMTPServer, envelope: Envelope) -> str:
        conn = server.conn
        assert conn is not None
        txn = conn.notes.pop("txn", None)
        assert isinstance(txn, Transaction)
        content: bytes = envelope.original_content or b""
        txn.data = content
        # aiosmtpd ends DATA only at CRLF.CRLF but keeps bare CR/LF inside lines; a
        # downstream server could read those as line ends (SMTP smuggling): refuse them.
        crlf = content.count(b"\r\n")
        if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
            result = Result(Verdict.DENY, replies.BARE_CR_LF, "smtpd")
            self._log(conn, txn, "rejected", result)
            return replies.BARE_CR_LF
        # Our trace header first: plugins and spamd see the message as it is queued.
        ssl_cipher = server.transport.get_extra_info("cipher") if server.transport else None
        client_name = await received.client_name(conn)
        txn.data = received.header(conn, txn, server.hostname, name=client_name,
                                   cipher=ssl_cipher if conn.tls else None) + content
        for hook in ("data_post", "queue"):
            result = await self._pipeline(conn).run(hook, conn, txn)
            if result.rejects:
                self._log(conn, txn, "rejected", result)
                if result.verdict.disconnects:
                    server.close_soon()
                return _reply(result, "554 5.6.0 Message refused")
        body = [o for o in envelope.mail_options if o.startswith("BODY=")]
        recipients = txn.recipients + [r for r in txn.bcc if r not in txn.recipients]
        delivered = await self.handoff.deliver(
            txn.sender,
            recipients,
            txn.data,
            mail_options=body,
            xforward=self._xforward(conn, client_name),
        )
        txn.notes["queue_id"] = delivered.queue_id
        verdict = "queued" if delivered.accepted else "deferred"
        self._log(conn, txn, verdict,
                  None if delivered.accepted else Result(Verdict.DENYSOFT, delivered.reply,
                                                         "handoff"))
        return delivered.reply

    async def handle_RSET(self, server: SMTPServer, session: Session, envelope: Envelope) -> Any:
        assert server.conn is not None
        self._end_transaction(server.conn, "aborted")
        return MISSING

    # -- AUTH (async: password hashing runs off the event loop) -----------------------

    @staticmethod
    async def _initial_or_challenge(
        server: SMTPServer, args: list[str], challenge: str
    ) -> bytes | None:
        """The client's first AUTH answer: inline after the mechanism, or asked for.

        None means the exchange is over (aborted or undecodable; the reply was sent).
        """
        if len(args) == 1:
            blob = await server.challenge_auth(challenge)
            return None if blob is MISSING else blob
        try:
            return base64.b64decode(args[1].encode(), validate=True)
        except (binascii.Error, ValueError):
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def auth_PLAIN(self, server: SMTPServer, args: list[str]) -> AuthResult:
        blob = await self._initial_or_challenge(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        try:
            authz, login, password = blob.split(b"\x00")
        except ValueError:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        # RFC 4616: an authorization identity other than the login would mean acting as
        # someone else; nobody here may do that.
        if authz and authz.lower() != login.lower():
            await server.push(replies.AUTHZID_REFUSED)
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, login, password)

    async def auth_LOGIN(self, server: SMTPServer, args: list[str]) -> AuthResult:
        login = await self._initial_or_challenge(server, args, server.AuthLoginUsernameChallenge)
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, login, password)

    async def _authenticate(self, server: SMTPServer, login: bytes, password: bytes) -> AuthResult:
        conn = server.conn
        assert conn is not None
        user = await self.state.passwords.verify(login, password)
        if user is None:
            log.warning("%s %s AUTH failed for %r", conn.daemon, conn.remote_ip,
                        login.decode(errors="replace")[:64])
            await asyncio.sleep(self.state.passwords.failure_delay)
            result = await self._pipeline(conn).run(
                "auth", conn, login.decode(errors="replace"), False)
            if result.rejects:
                await server.push(_reply(result, replies.AUTH_FAILED))
                if result.verdict.disconnects:
                    server.close_soon()
                return AuthResult(success=False, handled=True)
            return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
        conn.auth_user = user
        conn.naughty = None  # our own user: earlier marks (DNSBL, HELO...) no longer count
        conn.peer = AUTHENTICATED
        pipelines: Pipelines = conn.notes["pipelines"]  # type: ignore[assignment]
        conn.notes["pipeline"] = pipelines.for_peer(AUTHENTICATED)
        await self._pipeline(conn).run("auth", conn, user, True)
        return AuthResult(
            success=True, message=replies.AUTH_OK, auth_data=LoginPassword(login, b"")
        )

    # -- transactions and the terse log ------------------------------------------------

    @staticmethod
    def _xforward(conn: Connection, client_name: str = received.UNKNOWN) -> dict[str, str]:
        proto = ("ESMTP" if conn.esmtp else "SMTP")
        if conn.tls:
            proto += "S"
        if conn.authenticated:
            proto += "A"
        # Postfix's own Received line and logs then name the client as ours do
        name = "[UNAVAILABLE]" if client_name == received.UNKNOWN else client_name
        fields = {"ADDR": conn.remote_ip, "NAME": name, "PROTO": proto}
        if conn.helo and all(33 <= ord(c) < 127 and c not in "()<>@,;:\\\"[]" for c in
                             conn.helo[:255]):
            fields["HELO"] = conn.helo[:255]
        return fields

    def _end_transaction(self, conn: Connection, verdict: str) -> None:
        txn = conn.notes.pop("txn", None)
        if isinstance(txn, Transaction):
            if txn.rejected and not txn.recipients:
                # every recipient refused (relaying denied, greylisted): rejected when
                # every refusal was for good, deferred when the client may come back
                verdict = outcome("", temporary=any(
                    reply[:1] == "4" for _, _, reply in txn.rejected))
            self._log(conn, txn, verdict, None)

    @staticmethod
    def _log(
        conn: Connection, txn: Transaction | None, verdict: str, result: Result | None
    ) -> None:
        parts = [conn.daemon, conn.remote_ip, f"helo={conn.helo or '-'}"]
        if conn.authenticated:
            parts.append(f"auth={conn.auth_user}")
        if conn.tls:
            parts.append(f"tls={conn.tls_version or 'yes'}")
        if txn is not None:
            parts.append(f"from=<{txn.sender}>")
            parts.append("to=" + (",".join(f"<{r}>" for r in txn.recipients) or "-"))
            if txn.rejected:
                parts.append(
                    "refused=" + ",".join(f"<{r}>:{p}" for r, p, _ in txn.rejected)
                )
            if txn.data:
                parts.append(f"size={len(txn.data)}")
            queue_id = txn.notes.get("queue_id")
            if queue_id:
                parts.append(f"id={queue_id}")
            ms = (time.monotonic() - txn.started) * 1000
        else:
            ms = (time.monotonic() - conn.started) * 1000
        if result is not None:
            verdict = result.outcome  # a 4xx is deferred, a 5xx rejected, whoever asks
        parts.append(f"verdict={verdict}")
        if result is not None:
            parts.append(f"by={result.plugin or '-'}")
            parts.append(f'reply="{result.reply[:3]}"')
        if conn.naughty is not None:
            parts.append(f"naughty={conn.naughty[1]}")
        parts.append(f"ms={ms:.0f}")
        if conn.timings:
            # per-plugin milliseconds since the last line: where the time goes
            parts.append("t=" + ",".join(f"{k}:{v * 1000:.1f}" for k, v in
                                         conn.timings.items()))
            conn.timings.clear()
        terse.info(" ".join(parts))
