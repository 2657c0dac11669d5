"""Dovecot's auth policy server: bans and slow-downs for IMAP, POP3, ManageSieve and
the webmail (which logs in through IMAP), from the same ban store as the SMTP daemons.

Dovecot 2.4's auth process asks it over HTTP/1.1 (auth_policy_server_url; a unix
socket through the `auth_policy { http_client_proxy_socket_path }` filter, so the
request target is the absolute URL), a JSON object POSTed per login:

- `?command=allow`, before the password is checked, with the attributes
  `auth_policy_request_attributes` names (login, remote, protocol, fail_type, ...) and
  `tls`. The answer is `{"status": N, "msg": "..."}`: -1 refuses the login (Dovecot
  gives the client `msg`: IMAP `NO [ALERT] msg`, POP3 `-ERR [AUTH] msg`), 0 lets it
  go on, N > 0 makes it wait N seconds first. A banned address is refused; an address
  with recent failures waits the delay its next failure would (bans.failure_delay),
  an account under attack waits account_delay: Dovecot can only wait before it checks
  the password, so a correct password from such an address waits too.
- `?command=report`, after it, with `success` and `policy_reject` as well. A wrong
  password or an unknown user counts as one failure (BanStore.failed); a success, a
  login refused here (no password was tried) or Dovecot's own internal failure never.

Dovecot ignores a report's answer and takes any failure to reach this server (down,
slow past 2 s, an HTTP error) as status 0 while auth_policy_reject_on_fail is no: a
dead policy server locks no one out, it only stops the bans on Dovecot's ports.

The HTTP side is deliberately small and strict, for the one client it has: requests
are POST with a Content-Length (no chunked bodies), heads and bodies have size limits
and deadlines, anything else is answered 400 (405, 413) and the connection closed.
Connections are kept alive between requests, as Dovecot's HTTP client keeps them.

`appliance security-policy` runs it under supervisord: it binds its socket as root
(owner qpsmtpd, group dovecot: Dovecot's auth process runs as the dovecot user), then
runs as qpsmtpd, the ban store's owner. SIGHUP re-reads the rules (security.json).
"""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import math
import os
import pwd
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from appliance import paths
from appliance.security.bans import Ban, BanStore, Rules, format_duration, rules_from_dict

log = logging.getLogger("appliance.security.policy")

MAX_LINE = 4096  # bytes of the request line or one header line
MAX_HEAD = 16384  # bytes of the request line and headers together
MAX_HEADERS = 50
MAX_BODY = 65536  # Dovecot's requests are a few hundred bytes
READ_TIMEOUT_S = 10.0  # to read one request once its first line started
IDLE_TIMEOUT_S = 60.0  # between requests on a kept-alive connection
WRITE_TIMEOUT_S = 10.0
# What Dovecot's report calls the failure (its fail_type attribute): only these test
# a password. "policy" is our own refusal, "internal" Dovecot's fault, "disabled" and
# "expired" a correct password of an account that may not log in.
COUNTED_FAILURES = frozenset({"credentials", "account"})
DOVECOT_GROUP = "dovecot"  # Dovecot's default_internal_user, which its auth runs as


class BadRequest(Exception):
    """A request this server does not take: its HTTP status and why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error"}


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "line too long") from None
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "connection closed mid-request") from None
    if len(line) > MAX_LINE:
        raise BadRequest(431, "line too long")
    if not line.endswith(b"\r\n"):
        raise BadRequest(400, "line not ended by CRLF")
    return line[:-2]


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection; None when the client closed it (or stayed
    idle past IDLE_TIMEOUT_S) between requests. BadRequest for anything malformed, too
    big or slower than READ_TIMEOUT_S."""
    try:
        async with asyncio.timeout(IDLE_TIMEOUT_S):
            first = await reader.read(1)
    except TimeoutError:
        return None
    if not first:
        return None
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await _read_rest(first, reader)
    except TimeoutError:
        raise BadRequest(400, "request too slow") from None


async def _read_rest(first: bytes, reader: asyncio.StreamReader) -> Request:
    request_line = first + await _line(reader)
    size = len(request_line)
    try:
        method, target, version = request_line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0") or not target:
        raise BadRequest(400, "not an HTTP/1.x request")
    headers: dict[str, str] = {}
    for count in range(MAX_HEADERS + 2):
        line = await _line(reader)
        size += len(line) + 2
        if size > MAX_HEAD or count > MAX_HEADERS:
            raise BadRequest(431, "headers too large")
        if not line:
            break
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest(400, "header not ASCII") from None
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip() or name[0] in " \t":
            raise BadRequest(400, "malformed header")
        name = name.lower()
        if name in headers and name in ("content-length", "transfer-encoding", "host"):
            raise BadRequest(400, f"repeated {name} header")
        headers[name] = value.strip(" \t")
    if method != "POST":
        raise BadRequest(405, f"{method} not allowed: POST only")
    if "transfer-encoding" in headers:
        raise BadRequest(400, "only bodies with a Content-Length are taken")
    length_text = headers.get("content-length", "")
    if not length_text.isdigit() or not length_text.isascii():
        raise BadRequest(400, "Content-Length missing or malformed")
    length = int(length_text)
    if length > MAX_BODY:
        raise BadRequest(413, f"body over {MAX_BODY} bytes")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "body shorter than its Content-Length") from None
    return Request(method, target, version, headers, body)


def command_of(target: str) -> str:
    """'allow' or 'report' from the target (origin form `/?command=allow`, or the
    absolute URL Dovecot sends through its proxy socket)."""
    try:
        parts = urlsplit(target)
    except ValueError:
        raise BadRequest(400, "malformed target") from None
    if not parts.path.startswith("/") and parts.path != "":
        raise BadRequest(400, "malformed target")
    commands = parse_qs(parts.query).get("command", [])
    if commands not in (["allow"], ["report"]):
        raise BadRequest(400, "target without command=allow or command=report")
    return commands[0]


def body_of(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "body is not a JSON object")
    return data


def response(status: int, payload: dict[str, Any], close: bool) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode("ascii") + body


def refusal(ban: Ban, address: str, now: float) -> str:
    """What the client is told (one line, no leading '[': Dovecot sends it as
    IMAP `NO [ALERT] ...`, POP3 `-ERR [AUTH] ...`)."""
    left = ban.left(now)
    until = ("until the administrator lifts it" if left is None
             else f"try again in {format_duration(max(left, 1.0))}")
    return f"Your address {address} is banned ({ban.reason}): {until}"


def _text(data: dict[str, Any], key: str, limit: int = 256) -> str:
    value = data.get(key)
    text = value if isinstance(value, str) else ""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class PolicyServer:
    """Answers Dovecot's allow and report requests from a BanStore."""

    def __init__(self, store: BanStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task[None]] = set()

    def replace_store(self, store: BanStore) -> None:
        """New rules (SIGHUP): later requests use STORE; the old one is closed once the
        requests using it are done."""
        old, self.store = self.store, store
        asyncio.get_running_loop().run_in_executor(None, old.close)

    @property
    def rules(self) -> Rules:
        return self.store.rules

    async def allow(self, data: dict[str, Any]) -> dict[str, Any]:
        store = self.store
        if not store.rules.enabled:
            return {"status": 0, "msg": ""}
        remote, login = _text(data, "remote"), _text(data, "login")
        protocol = _text(data, "protocol") or "?"
        ban = await asyncio.to_thread(store.banned, remote)
        if ban is not None:
            log.info("refused %s %s user=<%s>: banned (%s)", remote, protocol, login,
                     ban.reason)
            return {"status": -1, "msg": refusal(ban, remote, self.clock())}
        if store.exempt(remote):  # never slowed either (the webmail's own sessions)
            return {"status": 0, "msg": ""}
        delay = max(await asyncio.to_thread(store.next_delay, remote),
                    await asyncio.to_thread(store.account_delay, login))
        return {"status": math.ceil(delay), "msg": ""}

    async def report(self, data: dict[str, Any]) -> dict[str, Any]:
        store = self.store
        if (not store.rules.enabled or data.get("success") is not False
                or data.get("policy_reject") is True
                or _text(data, "fail_type") not in COUNTED_FAILURES):
            return {"status": 0}
        remote, login = _text(data, "remote"), _text(data, "login")
        protocol = _text(data, "protocol") or "?"
        verdict = await asyncio.to_thread(store.failed, remote, protocol, login)
        if verdict.ban is not None:
            ban = verdict.ban
            length = ("" if ban.until is None
                      else f" for {format_duration(ban.until - ban.since)}")
            log.warning("banned %s%s after %s user=<%s>: %s", ban.key, length, protocol,
                        login, ban.reason)
        elif verdict.failures:
            log.info("failed login %s %s user=<%s>: %d within %s", remote, protocol,
                     login, verdict.failures, format_duration(store.rules.find_time))
        return {"status": 0}

    async def answer(self, request: Request) -> dict[str, Any]:
        command, data = command_of(request.target), body_of(request)
        try:
            if command == "allow":
                return await self.allow(data)
            return await self.report(data)
        except Exception:  # the store: never lock everyone out for it
            log.exception("policy %s failed; the login goes on unchecked", command)
            return {"status": 0, "msg": ""}

    async def handle(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            while True:
                try:
                    request = await read_request(reader)
                    if request is None:
                        break
                    payload, status, close = await self.answer(request), 200, \
                        not request.keep_alive
                except BadRequest as e:
                    log.warning("bad request: %s", e.why)
                    payload, status, close = {"error": e.why}, e.status, True
                writer.write(response(status, payload, close))
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await writer.drain()
                if close:
                    break
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # stopping
        finally:
            if task is not None:
                self.connections.discard(task)
            writer.close()

    async def start(self, sock: socket.socket) -> None:
        self.server = await asyncio.start_unix_server(self.handle, sock=sock,
                                                      limit=MAX_LINE)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
        await asyncio.to_thread(self.store.close)


def bind_socket(path: Path, owner: tuple[str, str] | None = None) -> socket.socket:
    """The listening socket at PATH (a stale one removed): read-write for its owner
    and group only, OWNER's (user, group) if given (only root can)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    if owner is not None:
        os.chown(path, pwd.getpwnam(owner[0]).pw_uid, grp.getgrnam(owner[1]).gr_gid)
    os.chmod(path, 0o660)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def drop_privileges(user: str) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    os.initgroups(user, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


def load_rules(path: Path) -> Rules:
    """The rules security.json holds; OSError, ValueError or TypeError if it cannot."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return rules_from_dict(data)


async def serve(rules: Rules, socket_path: Path) -> None:
    as_root = os.geteuid() == 0
    sock = bind_socket(socket_path, (paths.SECURITY_USER, DOVECOT_GROUP) if as_root else None)
    drop_privileges(paths.SECURITY_USER)
    server = PolicyServer(BanStore(paths.BANS_DB, rules))
    await server.start(sock)
    log.info("listening on %s (ban after %d failures within %s)", socket_path,
             rules.max_failures, format_duration(rules.find_time))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def reload() -> None:
        try:
            new = load_rules(paths.SECURITY_CONFIG)
        except (OSError, ValueError, TypeError) as e:
            log.error("SIGHUP: keeping the old rules: %s: %s", paths.SECURITY_CONFIG, e)
            return
        server.replace_store(BanStore(paths.BANS_DB, new))
        log.info("SIGHUP: rules re-read (ban after %d failures within %s)",
                 new.max_failures, format_duration(new.find_time))

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    await stopping.wait()
    log.info("shutting down")
    await server.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        rules = load_rules(paths.SECURITY_CONFIG)
    except (OSError, ValueError, TypeError) as e:
        log.error("cannot start: %s: %s", paths.SECURITY_CONFIG, e)
        return 1
    asyncio.run(serve(rules, paths.SECURITY_POLICY_SOCKET))
    return 0
