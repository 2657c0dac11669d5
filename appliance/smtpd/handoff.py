"""The synchronous hand-off to Postfix on 127.0.0.1:10025.

Our daemons answer 250 to a client only after Postfix answered 250 to the same
message: from then on the mail is in Postfix's durable queue. If Postfix is down, slow
or refuses, the client gets a 4xx and keeps the message. Connections are kept open and
reused between messages (Postfix closes idle ones; we retry once on a fresh one when
that is safe, i.e. before the message body was sent).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import aiosmtplib

from appliance.smtpd import replies

log = logging.getLogger("appliance.smtpd.handoff")

QUEUE_ID_RE = re.compile(r"queued as ([0-9A-Za-z]+)")
# Postfix's smtpd drops a client after smtpd_timeout (300 s) of silence; don't reuse
# a connection anywhere near that.
MAX_IDLE_S = 60.0


@dataclass(frozen=True)
class HandoffResult:
    accepted: bool
    reply: str  # the line to send to our client
    queue_id: str = ""


class _BeforeBody(Exception):
    """Failed before the body was sent: nothing can have been queued, retry is safe."""


class PostfixHandoff:
    def __init__(
        self, host: str, port: int, timeout: float, helo_name: str, pool_size: int = 16
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.helo_name = helo_name
        self.pool_size = pool_size
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._generation = 0  # bumped by reset(): older connections are not reused
        self._born: dict[int, int] = {}  # id(connection) -> generation it was opened in

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            local_hostname=self.helo_name,
            start_tls=False,
            use_tls=False,
        )
        await smtp.connect()
        await smtp.ehlo()
        self._born[id(smtp)] = self._generation
        return smtp

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        """A connection, and whether it came from the pool (and may be stale)."""
        now = time.monotonic()
        while self._idle:
            smtp, since = self._idle.pop()
            if smtp.is_connected and now - since < MAX_IDLE_S:
                return smtp, True
            smtp.close()
        return await self._connect(), False

    def _checkin(self, smtp: aiosmtplib.SMTP) -> None:
        fresh = self._born.get(id(smtp)) == self._generation
        if fresh and smtp.is_connected and len(self._idle) < self.pool_size:
            self._idle.append((smtp, time.monotonic()))
        else:
            self._born.pop(id(smtp), None)
            smtp.close()

    def reset(self) -> None:
        """Forget pooled connections: after `postfix reload` an old smtpd process keeps
        its old maps (users, aliases) for as long as our connection keeps it alive."""
        self._generation += 1
        while self._idle:
            smtp, _ = self._idle.pop()
            self._born.pop(id(smtp), None)
            smtp.close()

    async def close(self) -> None:
        self.reset()

    async def deliver(
        self,
        sender: str,
        recipients: list[str],
        data: bytes,
        *,
        mail_options: list[str] | None = None,
        xforward: dict[str, str] | None = None,
    ) -> HandoffResult:
        for attempt in (1, 2):
            try:
                smtp, pooled = await self._checkout()
            except (TimeoutError, OSError, aiosmtplib.SMTPException) as e:
                log.error("cannot reach Postfix at %s:%d: %s", self.host, self.port, e)
                return HandoffResult(False, replies.HANDOFF_UNAVAILABLE)
            try:
                result = await self._transaction(
                    smtp, sender, recipients, data, mail_options or [], xforward or {}
                )
            except _BeforeBody as e:
                smtp.close()
                if pooled and attempt == 1:
                    log.info("pooled connection to Postfix was stale (%s); retrying", e)
                    continue
                log.error("hand-off to Postfix failed before the body: %s", e)
                return HandoffResult(False, replies.HANDOFF_UNAVAILABLE)
            except ValueError as e:  # aiosmtplib refuses an address it cannot quote
                smtp.close()
                log.error("hand-off refused an address: %s", e)
                return HandoffResult(False, replies.HANDOFF_BAD_ADDRESS)
            except (TimeoutError, OSError, aiosmtplib.SMTPException) as e:
                # The body may or may not be queued: the client must retry (a rare
                # duplicate is better than a lost message).
                smtp.close()
                log.error("hand-off to Postfix failed during the body: %s", e)
                return HandoffResult(False, replies.HANDOFF_UNAVAILABLE)
            except BaseException:  # our client hung up and the session was cancelled
                smtp.close()
                self._born.pop(id(smtp), None)
                raise
            self._checkin(smtp)
            return result
        raise AssertionError("unreachable")

    async def _transaction(
        self,
        smtp: aiosmtplib.SMTP,
        sender: str,
        recipients: list[str],
        data: bytes,
        mail_options: list[str],
        xforward: dict[str, str],
    ) -> HandoffResult:
        try:
            if xforward:
                attrs = [f"{k}={v}".encode() for k, v in xforward.items()]
                resp = await smtp.execute_command(b"XFORWARD", *attrs)
                if resp.code != 250:
                    raise _BeforeBody(f"XFORWARD: {resp.code} {resp.message}")
            try:
                await smtp.mail(sender, options=mail_options)
            except aiosmtplib.SMTPSenderRefused as e:
                await smtp.rset()
                return self._refused(e.code, e.message)
            refusals: list[tuple[int, str]] = []
            for rcpt in recipients:
                try:
                    await smtp.rcpt(rcpt)
                except aiosmtplib.SMTPRecipientRefused as e:
                    refusals.append((e.code, e.message))
            if refusals:
                # Our pipeline already said 250 to every one of these recipients, so
                # Postfix may not take only some of them: queue nothing, let the client
                # retry, unless every recipient was refused for good.
                await smtp.rset()
                if len(refusals) == len(recipients) and all(c >= 500 for c, _ in refusals):
                    return self._refused(*refusals[0])
                log.warning("Postfix refused %d of %d recipients: %s",
                            len(refusals), len(recipients), refusals[0])
                return HandoffResult(False, replies.HANDOFF_REFUSED_SOME)
        except (TimeoutError, OSError, aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError) as e:
            raise _BeforeBody(str(e)) from e
        try:
            resp = await smtp.data(data)
        except aiosmtplib.SMTPDataError as e:
            return self._refused(e.code, e.message)
        match = QUEUE_ID_RE.search(resp.message)
        queue_id = match.group(1) if match else ""
        return HandoffResult(True, replies.QUEUED.format(queue_id=queue_id or "?"), queue_id)

    @staticmethod
    def _refused(code: int, message: str) -> HandoffResult:
        # Pass Postfix's verdict through, but never let a 2xx/3xx stand for a refusal.
        if not 400 <= code < 600:
            return HandoffResult(False, replies.HANDOFF_UNAVAILABLE)
        text = " ".join(message.split())
        return HandoffResult(False, f"{code} {text}")
