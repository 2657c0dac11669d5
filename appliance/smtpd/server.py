"""Our aiosmtpd SMTP subclass: what aiosmtpd lacks and a mail server needs.

- connection caps (SME Instances / InstancesPerIP), refused with 421 before anything else;
- a connect hook that runs before the greeting and a disconnect hook;
- the Connection object that lives on the protocol instance (aiosmtpd re-creates its
  Session at STARTTLS, so per-connection state cannot live there);
- DATA without aiosmtpd's line-length refusal: only the message size is limited;
- enhanced status codes (RFC 2034, which we advertise) on aiosmtpd's own replies, and
  no second STARTTLS inside TLS;
- the PROXY protocol (v2 and v1, parsed by aiosmtpd's own `proxy_protocol`), required
  from network.trusted_proxies and refused from everyone else: the header's source
  address becomes the connection's remote address before anything sees it (caps,
  plugins, Received, logs). aiosmtpd's `proxy_protocol_timeout` would want it from every
  client, so the header is read here, per peer;
- implicit TLS on 465 started by the protocol itself (as STARTTLS is), after the PROXY
  header a load balancer sends in clear before the client's TLS.

Relies on aiosmtpd 1.4.x internals (`_handle_client`, `_original_transport`,
`_tls_protocol`, `_reader`, `_call_handler_hook`, `_set_post_data_state`,
`proxy_protocol.get_proxy`) and on its reply texts (AIOSMTPD_REPLIES); the dependency
is pinned to that series.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from asyncio import sslproto
from collections import Counter
from typing import TYPE_CHECKING, Any, AnyStr, cast

from aiosmtpd.proxy_protocol import V2_SIGNATURE, ProxyData, get_proxy
from aiosmtpd.smtp import MISSING, SMTP, syntax

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection
from appliance.smtpd.peers import LocalNetworks, host_key, ip_address

if TYPE_CHECKING:
    from appliance.smtpd.handler import Handler

log = logging.getLogger("appliance.smtpd.server")

# Hard stop for unknown commands when no plugin counts them (local peers).
UNRECOGNIZED_BACKSTOP = 50
# How long a trusted proxy has for its PROXY header (at most the session timeout).
PROXY_TIMEOUT_S = 10.0
# The first bytes of a PROXY header, v1 and v2: no SMTP client starts so.
PROXY_SIGNATURES = (b"PROXY", V2_SIGNATURE[:5])
SIGNATURE_LENGTH = 5
TLS_HANDSHAKE_TIMEOUT_S = 30

# aiosmtpd's own reply lines that lack an enhanced status code, and ours in their place.
AIOSMTPD_REPLIES: dict[str, str] = {
    "500 Command line too long": replies.LINE_TOO_LONG,
    "500 Error: bad syntax": replies.BAD_SYNTAX,
    "500 Error: strict ASCII mode": replies.NON_ASCII,
    "554 Command refused due to lack of security": replies.TLS_HANDSHAKE_FAILED,
    "530 Must issue a STARTTLS command first": replies.TLS_FIRST,
    "454 TLS not available": replies.TLS_UNAVAILABLE,
    "220 Ready to start TLS": replies.TLS_READY,
    "503 Error: need MAIL command": replies.NEED_MAIL,
    "503 Error: need RCPT command": replies.NEED_RCPT,
    "503 Error: nested MAIL command": replies.NESTED_MAIL,
    "503 Already authenticated": replies.ALREADY_AUTHENTICATED,
    "552 Error: message size exceeds fixed maximum message size": replies.MESSAGE_TOO_BIG,
    "555 MAIL FROM parameters not recognized or not implemented":
        replies.PARAMETERS_UNKNOWN.format(command="MAIL FROM"),
    "555 RCPT TO parameters not recognized or not implemented":
        replies.PARAMETERS_UNKNOWN.format(command="RCPT TO"),
    "502 EXPN not implemented": replies.NOT_IMPLEMENTED.format(command="EXPN"),
    "250 OK": replies.OK,
    "221 Bye": replies.BYE,
}
# Families of aiosmtpd refusals whose text varies ("501 Syntax: HELO hostname", "503
# Error: send EHLO first", "502 Could not VRFY x"): the subject and detail to insert.
_REFUSAL_DETAILS = (("501 ", "5.4"), ("503 ", "5.1"), ("502 ", "5.1"), ("500 Error: c", "5.1"))
_HAS_ENHANCED = re.compile(r"\d{3} [245]\.\d{1,3}\.\d{1,3}(?: |$)")


def enhanced(line: str) -> str:
    """The reply line with an enhanced status code: ours for aiosmtpd's known lines,
    then for any other 4xx/5xx without one, its class with the best detail known
    (X.0.0 at worst). Greeting, EHLO lines and continuations pass as they are."""
    if (mapped := AIOSMTPD_REPLIES.get(line)) is not None:
        return mapped
    if line[:1] not in ("4", "5") or line[3:4] != " " or _HAS_ENHANCED.match(line):
        return line
    detail = next((d for start, d in _REFUSAL_DETAILS if line.startswith(start)), "0.0")
    return f"{line[:3]} {line[0]}.{detail} {line[4:]}"


class _Commands(dict[str, Any]):
    """aiosmtpd's verb table; unknown verbs go to our hook instead of a bare 500.

    Only `_handle_client` looks verbs up with `get(verb, None)`-style calls for dispatch;
    HELP checks `__smtp_syntax__`, which the fallback lacks, so HELP stays truthful.
    """

    def __init__(self, table: dict[str, Any], fallback: Any) -> None:
        super().__init__(table)
        self.fallback = fallback

    def get(self, key: Any, default: Any = None) -> Any:
        found = super().get(key, default)
        if found is None and isinstance(key, str):
            return lambda arg: self.fallback(key, arg)
        return found


class ConnectionLimits:
    """Counts open connections of one daemon, in total and per client address."""

    def __init__(self, instances: int, per_ip: int) -> None:
        self.instances = instances
        self.per_ip = per_ip
        self.total = 0
        self.by_ip: Counter[str] = Counter()
        self.open: set[SMTPServer] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def acquire(self, ip: str) -> str | None:
        """Count a new connection; return the refusal line if it is over a cap. An IPv6
        client is counted by its /64 (host_key)."""
        ip = host_key(ip)
        if self.total >= self.instances:
            return replies.TOO_MANY_CONNECTIONS
        if self.by_ip[ip] >= self.per_ip:
            return replies.TOO_MANY_FROM_ADDRESS
        self.total += 1
        self.by_ip[ip] += 1
        self.idle.clear()
        return None

    def release(self, ip: str) -> None:
        ip = host_key(ip)
        self.total -= 1
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]
        if self.total == 0:
            self.idle.set()


class SMTPServer(SMTP):
    def __init__(
        self,
        handler: Handler,
        *,
        daemon: str,
        limits: ConnectionLimits,
        implicit_tls: bool = False,
        implicit_tls_context: ssl.SSLContext | None = None,
        trusted_proxies: LocalNetworks | None = None,
        proxy_timeout: float = PROXY_TIMEOUT_S,
        min_data_rate: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        if implicit_tls and implicit_tls_context is None:
            raise ValueError("implicit TLS needs its context")
        self.daemon = daemon
        self.min_data_rate = min_data_rate
        self._data_started: float | None = None  # loop time DATA's 354 went out
        self._data_bytes = 0
        self._timer_paused = False  # by data_complete(), while a message is checked
        self.limits = limits
        self.implicit_tls = implicit_tls
        self.implicit_tls_context = implicit_tls_context
        self.trusted_proxies = trusted_proxies
        self.proxy_timeout = min(proxy_timeout, self._timeout_duration)
        self.conn: Connection | None = None
        self.proxy: ProxyData | None = None  # the header a trusted proxy sent
        self._proxied = False  # the peer is a trusted proxy: a PROXY header comes first
        self._counted: str | None = None  # the address counted in limits
        self._sniffing = False  # an untrusted peer's first bytes, held back until known
        self._first_bytes = b""
        self._sniffed: asyncio.Future[None] | None = None  # 465 waits for the verdict
        self._refused = False
        self._unrecognized = 0
        self._smtp_methods = _Commands(self._smtp_methods, self._on_unrecognized)

    # -- connection life ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.conn is None:  # a new client (not the TLS layer after STARTTLS)
            peer = transport.get_extra_info("peername") or ("?", 0)
            sock = transport.get_extra_info("sockname") or ("?", 0)
            # IPv4-mapped IPv6 as plain IPv4: counted, logged and judged in one spelling.
            addr = ip_address(str(peer[0]))
            ip = str(addr) if addr is not None else str(peer[0])
            self._proxied = self.trusted_proxies is not None and ip in self.trusted_proxies
            self._sniffing = not self._proxied
            # A proxied client is counted by its real address, once the header is in;
            # one on 465 inside TLS, where its refusal is said.
            if not self._proxied and not self.implicit_tls:
                refusal = self.limits.acquire(ip)
                if refusal:
                    self._refused = True
                    log.warning("%s %s refused: %s", self.daemon, ip, refusal)
                    transport.write(refusal.encode() + b"\r\n")  # type: ignore[attr-defined]
                    transport.close()
                    return
                self._counted = ip
            self.conn = Connection(
                daemon=self.daemon,
                remote_ip=ip,
                remote_port=int(peer[1]),
                local_port=int(sock[1]),
                tls=self.implicit_tls,
            )
            self.conn.input_pending = self._input_pending
            self.limits.open.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self.conn is not None and self in self.limits.open:
            self.limits.open.discard(self)
            if self._counted is not None:
                self.limits.release(self._counted)
                self._counted = None
            if self.conn.pipeline is not None:  # the connect hooks ran
                self.event_handler.on_disconnect(self)
        super().connection_lost(error)

    async def _admit(self) -> bool:
        """The PROXY header of a trusted proxy, implicit TLS, and the connection caps,
        in that order, before the connect hooks: False if the connection was closed."""
        assert self.conn is not None and self.transport is not None
        if self._proxied and not await self._read_proxy_header():
            self.transport.close()
            return False
        if self.implicit_tls and not await self._start_implicit_tls():
            return False
        if self._counted is None:
            refusal = self.limits.acquire(self.conn.remote_ip)
            if refusal:
                log.warning("%s %s refused: %s", self.daemon, self.conn.remote_ip, refusal)
                await self.push(refusal)
                self.transport.close()
                return False
            self._counted = self.conn.remote_ip
        return True

    async def _read_proxy_header(self) -> bool:
        """The trusted proxy's header (aiosmtpd's parser): the client's address becomes
        the connection's. LOCAL (v2) and UNKNOWN (v1), a proxy's own health check, keep
        the proxy's address, as the protocol says."""
        assert self.conn is not None
        proxy_ip = self.conn.remote_ip
        if self._timeout_handle is not None:  # this wait has its own limit
            self._timeout_handle.cancel()
        try:
            data = await asyncio.wait_for(get_proxy(self._reader), self.proxy_timeout)
        except TimeoutError:
            log.warning("%s %s closed: no PROXY header within %g s from a trusted proxy",
                        self.daemon, proxy_ip, self.proxy_timeout)
            return False
        except (asyncio.IncompleteReadError, ConnectionError):
            log.warning("%s %s closed: the trusted proxy hung up before its PROXY "
                        "header", self.daemon, proxy_ip)
            return False
        if not data.valid:
            log.warning("%s %s closed: bad PROXY header from a trusted proxy (%s)",
                        self.daemon, proxy_ip, data.error or "not a PROXY header")
            return False
        self.proxy = data
        self._reset_timeout()
        source = ip_address(str(data.src_addr)) if data.src_addr is not None else None
        if source is None or data.command == 0:  # LOCAL, UNKNOWN, or a UNIX socket
            log.info("%s %s: PROXY header without a client address, the proxy's own "
                     "connection", self.daemon, proxy_ip)
            return True
        self.conn.remote_ip = str(source)
        self.conn.remote_port = int(data.src_port or 0)
        log.info("%s %s:%d by PROXY v%d from %s", self.daemon, self.conn.remote_ip,
                 self.conn.remote_port, data.version, proxy_ip)
        return True

    async def _start_implicit_tls(self) -> bool:
        """465: TLS from the first byte after any PROXY header, started the way
        aiosmtpd starts STARTTLS (its connection_made then sees the TLS layer, and our
        handle_STARTTLS records it). Bytes of the handshake already read go to it."""
        assert self.transport is not None and self.implicit_tls_context is not None
        if self._sniffing:  # the first bytes decide between TLS and a hang-up
            self._sniffed = self.loop.create_future()
            try:
                await asyncio.wait_for(self._sniffed, TLS_HANDSHAKE_TIMEOUT_S)
            except TimeoutError:
                self.transport.close()
                return False
        early = bytes(self._reader._buffer)  # type: ignore[attr-defined]
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop, self, self.implicit_tls_context, waiter, server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        while early:
            buf = self._tls_protocol.get_buffer(len(early))
            n = min(len(buf), len(early))
            buf[:n] = early[:n]
            self._tls_protocol.buffer_updated(n)
            early = early[n:]
        try:
            await waiter
        except Exception as e:  # noqa: BLE001 - whatever ended the handshake ends this
            assert self.conn is not None
            log.info("%s %s: TLS handshake failed: %s", self.daemon, self.conn.remote_ip,
                     e or type(e).__name__)
            # The TLS layer tells us nothing more (no connection_made, so no
            # connection_lost): this connection's slot and timer end here.
            self.limits.open.discard(self)
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()
            self._original_transport.close()
            return False
        return True

    def _sniff(self, data: bytes) -> bytes | None:
        """An untrusted peer's first bytes: held until there are enough to tell a PROXY
        header, which closes the connection (logged); None while undecided. A complete
        line ends the wait (an empty command line is the v2 signature's start)."""
        self._first_bytes += data
        head = self._first_bytes[:SIGNATURE_LENGTH]
        if any(sig.startswith(head) for sig in PROXY_SIGNATURES) and (
                len(head) == SIGNATURE_LENGTH or b"\n" not in head):
            if len(head) < SIGNATURE_LENGTH:
                return None  # could still be one
            assert self.conn is not None and self.transport is not None
            log.warning("%s %s closed: PROXY header from an address not in "
                        "network.trusted_proxies", self.daemon, self.conn.remote_ip)
            self._sniffing = False
            self._first_bytes = b""
            self.transport.close()
            return b""
        self._sniffing = False
        data, self._first_bytes = self._first_bytes, b""
        if self._sniffed is not None and not self._sniffed.done():
            self.loop.call_soon(self._sniffed.set_result, None)  # once the bytes are in
        return data

    async def _handle_client(self) -> None:
        assert self.conn is not None
        if not await self._admit():
            return
        # The connect hook runs before the greeting, so a plugin can refuse the session.
        result = await self.event_handler.on_connect(self)
        if result is not None:
            await self.push(result)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    def data_received(self, data: bytes) -> None:
        # Between commands the timer is aiosmtpd's: re-armed per complete command line,
        # so a client trickling a byte at a time still has `timeout` for the line. In
        # DATA every byte re-arms it (a slow link is not idle), but never past the
        # deadline the minimum rate gives: timeout + bytes so far / min_data_rate.
        if self._sniffing and self._original_transport is None:
            held = self._sniff(data)
            if not held:
                return
            data = held
        if self._data_started is not None and self._timeout_handle is not None:
            self._data_bytes += len(data)
            wait = self._timeout_duration
            if self.min_data_rate:
                deadline = (self._data_started + self._timeout_duration
                            + self._data_bytes / self.min_data_rate)
                wait = min(wait, deadline - self.loop.time())
            self._reset_timeout(max(wait, 0.001))
        super().data_received(data)

    def data_complete(self) -> None:
        """The message is in: no client timer while the checks and the hand-off run
        (each is bounded by its own timeouts), so our timeout never cuts off a message
        Postfix may already have queued. data_resume() re-arms it when they are done."""
        self._data_started = None
        self._timer_paused = True
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()

    def data_resume(self) -> None:
        """The verdict is known: the timer runs again, before the reply is pushed (a
        client that stops reading must not hold its slot). Idempotent; nothing to do
        once the connection is gone."""
        if not self._timer_paused:
            return
        self._timer_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self._reset_timeout()

    def _timeout_cb(self) -> None:
        if self.transport is None:
            return  # the connection went away; a late timer has nothing to close
        # Say why before hanging up, as Postfix does (aiosmtpd just closes).
        if not self.transport.is_closing():
            line = replies.TIMEOUT.format(hostname=self.hostname)
            cast(asyncio.WriteTransport, self.transport).write(f"{line}\r\n".encode())
        super()._timeout_cb()

    async def _on_unrecognized(self, command: str, arg: str | None) -> None:
        self._unrecognized += 1
        if self._unrecognized > UNRECOGNIZED_BACKSTOP:
            await self.push(replies.TOO_MANY_UNRECOGNIZED)
            self.close_soon()
            return
        await self.push(await self.event_handler.on_unrecognized(self, command))

    async def push(self, status: AnyStr) -> None:
        await super().push(enhanced(status) if isinstance(status, str) else status)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        # aiosmtpd would start a second handshake inside the first (RFC 3207: 503).
        if self.implicit_tls or self._tls_protocol is not None:
            await self.push(replies.TLS_ALREADY_ACTIVE)
            return
        await super().smtp_STARTTLS(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd has no hook between DATA and its 354: run ours when DATA is otherwise
        # acceptable, so aiosmtpd's own sequence errors keep their usual replies.
        if (not arg and self.envelope is not None and self.envelope.rcpt_tos
                and self.session is not None and self.session.host_name
                and not (self._auth_required and not self.session.authenticated)):
            refusal = await self.event_handler.on_data(self)
            if refusal is not None:
                await self.push(refusal)
                return
        self._data_started, self._data_bytes = self.loop.time(), 0
        try:
            await self._receive_data(arg)
        finally:
            self._data_started = None
            self.data_resume()  # if handle_DATA did not get that far

    async def _receive_data(self, arg: str) -> None:
        """aiosmtpd's DATA, less its refusal of lines over 1000 bytes.

        aiosmtpd reads the whole message and then answers a long line with a permanent
        500. Postfix takes lines of any length (line_length_limit only chops them inside
        its queue file) and folds them on output (smtp_line_length_limit), so a long line
        is no reason to lose a message: only its size is limited (552 5.3.4). Lines come
        in pieces of at most the reader's limit, so a line costs no more memory than the
        message it belongs to.
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None and not self._decode_data
        if not self.envelope.rcpt_tos:
            await self.push(replies.NEED_RCPT)
            return
        if arg:
            await self.push(replies.DATA_SYNTAX)
            return
        await self.push(replies.START_DATA)
        limit = self.data_size_limit
        lines: list[bytes] = []
        pieces: list[bytes] = []  # of the line being read
        size, too_big, mid_line = 0, False, False
        while self.transport is not None:
            try:
                piece = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as e:  # no CRLF within the reader's limit
                piece = await self._reader.read(e.consumed)
            if not mid_line and piece == b".\r\n":
                break
            mid_line = not piece.endswith(b"\r\n")
            size += len(piece)
            if limit and size > limit and not too_big:
                too_big = True  # read on to the end, keep nothing (RFC 5321 4.2.5)
                lines.clear()
            if too_big:
                pieces.clear()
                continue
            pieces.append(piece)
            if not mid_line:
                line = b"".join(pieces)
                pieces.clear()
                lines.append(line[1:] if line.startswith(b".") else line)  # 4.5.2
        if too_big:
            self._set_post_data_state()
            await self.push(replies.MESSAGE_TOO_BIG)
            return
        content = b"".join(lines)
        lines.clear()
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(replies.OK if status is MISSING else status)

    def _input_pending(self) -> bool:
        reader = getattr(self, "_reader", None)
        return bool(reader is not None and getattr(reader, "_buffer", b""))

    def envelope_reset(self) -> None:
        self.envelope = self._create_envelope()

    def relax_auth(self) -> None:
        """Let this client send without AUTH or STARTTLS (SME RelayRequiresAuth off)."""
        self._auth_required = False
        self.require_starttls = False

    def tls_version(self) -> str:
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        return ssl_object.version() if ssl_object else ""

    def close_soon(self) -> None:
        """Hang up right after the reply being sent now (DENY_DISCONNECT)."""
        if self.transport is not None:
            self.loop.call_soon(self.transport.close)
