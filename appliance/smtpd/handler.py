"""The aiosmtpd handler: turns SMTP commands into pipeline events and verdicts into replies.

Thin on purpose: it builds the event, runs the pipeline, maps the result to a reply
and hands accepted mail to Postfix. AUTH's exchanges are `sasl`'s, the per-transaction
log line is `txlog`'s, the reply texts are `replies`'.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, Session

from appliance.security.bans import BanStore
from appliance.smtpd import received, replies, sasl, storage, txlog
from appliance.smtpd.address import qualify_postmaster
from appliance.smtpd.auth import PasswordChecker
from appliance.smtpd.handoff import PostfixHandoff
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.peers import SUBMISSION_DAEMONS
from appliance.smtpd.pipeline import Pipeline, Pipelines
from appliance.smtpd.results import Result, Verdict
from appliance.smtpd.server import SMTPServer
from appliance.smtpd.settings import Settings

log = logging.getLogger("appliance.smtpd.handler")
_background: set[asyncio.Task[Any]] = set()


@dataclass
class State:
    """Everything derived from the settings file; swapped whole on reload (SIGHUP)."""

    settings: Settings
    pipelines: Pipelines
    passwords: PasswordChecker
    bans: BanStore | None  # None: security.enabled is off

    @property
    def primary_domain(self) -> str:
        return self.settings.primary_domain

    @property
    def max_recipients(self) -> int:
        return self.settings.max_recipients

    def recipient_limit(self, conn: Connection, recipients: int) -> str | None:
        """The 452 for one recipient too many: a logged-in user's own limit
        (limits.user_recipients_per_message), smtpd.max_recipients for everyone else."""
        limits = self.settings.user_limits.get(conn.auth_user) if conn.auth_user else None
        if limits is None:
            return (replies.TOO_MANY_RECIPIENTS if recipients >= self.max_recipients
                    else None)
        if recipients < limits.recipients_per_message:
            return None
        return replies.USER_TOO_MANY_RECIPIENTS.format(
            user=conn.auth_user, limit=limits.recipients_per_message)

    @property
    def queue_dir(self) -> str:
        return self.settings.queue_dir

    @property
    def queue_min_free(self) -> int:
        return self.settings.queue_min_free

    @property
    def relay_requires_auth(self) -> bool:
        return self.settings.plugin_settings.relay.require_auth


def _reply(result: Result, default: str) -> str:
    return result.reply or default


def _refuse_recipient(conn: Connection, txn: Transaction, address: str, plugin: str,
                      reply: str) -> str:
    txn.rejected.append((address, plugin, reply))
    if reply.startswith("5") and plugin != "smtpd":
        # an invalid recipient, for the tarpit: not a deferral (greylisting) nor the cap
        conn.refused_recipients += 1
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
        conn.pipelines = pipelines
        conn.peer = pipelines.peer_of(conn.remote_ip)
        conn.pipeline = pipelines.for_peer(conn.peer)
        received.look_up_client_name(conn, pipelines.ctx.resolver)  # for our Received line
        if (refusal := await sasl.banned(conn, self.state.bans)) is not None:
            return refusal
        result = await self._pipeline(conn).run("connect", conn)
        if result.rejects:
            txlog.write(conn, None, "rejected", result)
            return _reply(result, replies.CONNECTION_REFUSED)
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
        txlog.end_transaction(conn, "aborted")
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
        txn = conn.transaction
        if txn is None:
            return None
        result = await self._pipeline(conn).run("data", conn, txn)
        if result.rejects:
            if result.verdict.disconnects:
                server.close_soon()
            conn.transaction = None
            txlog.write(conn, txn, "rejected", result)
            server.envelope_reset()
            return _reply(result, replies.TRANSACTION_REFUSED)
        return None

    @staticmethod
    def _pipeline(conn: Connection) -> Pipeline:
        assert conn.pipeline is not None, "set at connect"
        return conn.pipeline

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
        return replies.HELO_OK.format(hostname=server.hostname)

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
        return responses[:1] + list(replies.EHLO_EXTENSIONS) + responses[1:]

    async def _helo(
        self, server: SMTPServer, conn: Connection, hostname: str, esmtp: bool
    ) -> str | None:
        txlog.end_transaction(conn, "aborted")
        conn.helo = hostname
        conn.esmtp = esmtp
        result = await self._pipeline(conn).run("helo", conn, hostname)
        if result.rejects:
            if result.verdict.disconnects:
                server.close_soon()
            return _reply(result, replies.HELO_REFUSED)
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
        txlog.end_transaction(conn, "aborted")
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
            txlog.write(conn, txn, "rejected", result)
            if result.verdict.disconnects:
                server.close_soon()
            return _reply(result, replies.SENDER_REFUSED)
        conn.transaction = txn
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
        txn = conn.transaction
        assert txn is not None, "aiosmtpd refuses RCPT before MAIL"
        address = qualify_postmaster(address, self.state.primary_domain)
        if (refusal := self.state.recipient_limit(conn, len(txn.recipients))) is not None:
            return _refuse_recipient(conn, txn, address, "smtpd", refusal)
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
        return _refuse_recipient(conn, txn, address, result.plugin,
                                 result.reply or replies.RECIPIENT_REFUSED)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        server.data_complete()
        try:
            return await self._data(server, envelope)
        finally:
            server.data_resume()  # before aiosmtpd pushes our reply

    async def _data(self, server: SMTPServer, envelope: Envelope) -> str:
        conn = server.conn
        assert conn is not None
        txn, conn.transaction = conn.transaction, None
        assert txn is not None, "aiosmtpd refuses DATA before RCPT"
        content: bytes = envelope.original_content or b""
        txn.data = content
        # aiosmtpd ends DATA only at CRLF.CRLF but keeps bare CR/LF inside lines; a
        # downstream server could read those as line ends (SMTP smuggling): refuse them.
        crlf = content.count(b"\r\n")
        if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
            result = Result(Verdict.DENY, replies.BARE_CR_LF, "smtpd")
            txlog.write(conn, txn, "rejected", result)
            return replies.BARE_CR_LF
        # Our trace header first: plugins and spamd see the message as it is queued.
        ssl_cipher = server.transport.get_extra_info("cipher") if server.transport else None
        client_name = await received.client_name(conn)
        txn.data = received.header(conn, txn, server.hostname, name=client_name,
                                   cipher=ssl_cipher if conn.tls else None) + content
        for hook in ("data_post", "queue"):
            result = await self._pipeline(conn).run(hook, conn, txn)
            if result.rejects:
                txlog.write(conn, txn, "rejected", result)
                if result.verdict.disconnects:
                    server.close_soon()
                return _reply(result, replies.MESSAGE_REFUSED)
        body = [o for o in envelope.mail_options if o.startswith("BODY=")]
        recipients = txn.recipients + [r for r in txn.bcc if r not in txn.recipients]
        delivered = await self.handoff.deliver(
            txn.sender,
            recipients,
            txn.data,
            mail_options=body,
            xforward=self._xforward(conn, client_name),
        )
        txn.queue_id = delivered.queue_id
        verdict = "queued" if delivered.accepted else "deferred"
        txlog.write(conn, txn, verdict,
                    None if delivered.accepted else Result(Verdict.DENYSOFT, delivered.reply,
                                                           "handoff"))
        return delivered.reply

    async def handle_RSET(self, server: SMTPServer, session: Session, envelope: Envelope) -> Any:
        assert server.conn is not None
        txlog.end_transaction(server.conn, "aborted")
        return MISSING

    # -- AUTH: aiosmtpd calls auth_<MECHANISM>; the mechanics are sasl's ---------------

    async def auth_PLAIN(self, server: SMTPServer, args: list[str]) -> AuthResult:
        credentials = await sasl.plain(server, args)
        if credentials is None:
            return sasl.handled()
        return await sasl.authenticate(server, self.state.passwords, self.state.bans,
                                       *credentials)

    async def auth_LOGIN(self, server: SMTPServer, args: list[str]) -> AuthResult:
        credentials = await sasl.login(server, args)
        if credentials is None:
            return sasl.handled()
        return await sasl.authenticate(server, self.state.passwords, self.state.bans,
                                       *credentials)

    # -- the hand-off ----------------------------------------------------------------

    @staticmethod
    def _xforward(conn: Connection, client_name: str = received.UNKNOWN) -> dict[str, str]:
        proto = ("ESMTP" if conn.esmtp else "SMTP")
        if conn.tls:
            proto += "S"
        if conn.authenticated:
            proto += "A"
        # Postfix's own Received line and logs then name the client as ours do
        name = "[UNAVAILABLE]" if client_name == received.UNKNOWN else client_name
        # an IPv6 ADDR needs its "IPv6:" prefix (Postfix: 501 Bad ADDR syntax without)
        fields = {"ADDR": received.address_literal(conn.remote_ip), "NAME": name,
                  "PROTO": proto}
        if conn.helo and all(33 <= ord(c) < 127 and c not in "()<>@,;:\\\"[]" for c in
                             conn.helo[:255]):
            fields["HELO"] = conn.helo[:255]
        return fields
