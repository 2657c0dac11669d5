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

The HTTP side is the standard library's (http.server.BaseHTTPRequestHandler speaking
HTTP/1.1, so connections are kept alive between requests as Dovecot's HTTP client
keeps them; socketserver's threading unix stream server, a daemon thread per
connection), made strict for the one client it has: requests are POST with a
Content-Length (no chunked bodies: 400; none: 411), the request line, headers and body
have size limits (MAX_*, under the library's own), reads have socket deadlines (a
stalled request is answered 400, an idle connection closed), and anything else is
answered 4xx with a JSON `{"error": ...}` and the connection closed. The BanStore is
thread-safe (one connection under a lock): the handlers call it directly.

`appliance security-policy` runs it under supervisord: it binds its socket as root
(owner qpsmtpd, group dovecot: Dovecot's auth process runs as the dovecot user), then
runs as qpsmtpd, the ban store's owner. The main thread takes the signals (sigwait):
SIGHUP re-reads the rules (security.json) into a new store, which later requests use
(the old one is closed once the requests using it are done); SIGTERM stops it.
"""

from __future__ import annotations

import grp
import json
import logging
import math
import os
import pwd
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from appliance import paths
from appliance.privileges import drop_privileges
from appliance.security.bans import Ban, BanStore, Rules, format_duration, rules_from_dict

log = logging.getLogger("appliance.security.policy")

MAX_LINE = 4096  # bytes of the request line or one header line
MAX_HEAD = 16384  # bytes of the request line and headers together
MAX_HEADERS = 50
MAX_BODY = 65536  # Dovecot's requests are a few hundred bytes
READ_TIMEOUT_S = 10.0  # the socket deadline within a request once its first line came
IDLE_TIMEOUT_S = 60.0  # between requests on a kept-alive connection
WRITE_TIMEOUT_S = 10.0
STOP_POLL_S = 0.1  # how soon stop() takes (socketserver's accept loop polls for it)
# What Dovecot's report calls the failure (its fail_type attribute): only these test
# a password. "policy" is our own refusal, "internal" Dovecot's fault, "disabled" and
# "expired" a correct password of an account that may not log in.
COUNTED_FAILURES = frozenset({"credentials", "account"})
DOVECOT_GROUP = "dovecot"  # Dovecot's default_internal_user, which its auth runs as
UNIQUE_HEADERS = ("Content-Length", "Transfer-Encoding", "Host")


class BadRequest(Exception):
    """A request this server does not take: its HTTP status and why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


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


def body_of(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "body is not a JSON object")
    return data


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
        self._lock = threading.Lock()  # guards store and _busy
        self._busy: dict[BanStore, int] = {}  # requests using each store
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def replace_store(self, store: BanStore) -> None:
        """New rules (SIGHUP): later requests use STORE; the old one is closed once the
        requests using it are done."""
        with self._lock:
            old, self.store = self.store, store
            idle = old not in self._busy
        if idle:
            old.close()

    @contextmanager
    def _using(self) -> Iterator[BanStore]:
        with self._lock:
            store = self.store
            self._busy[store] = self._busy.get(store, 0) + 1
        try:
            yield store
        finally:
            with self._lock:
                self._busy[store] -= 1
                done = self._busy[store] == 0
                if done:
                    del self._busy[store]
                retired = done and store is not self.store
            if retired:
                store.close()

    @property
    def rules(self) -> Rules:
        return self.store.rules

    def allow(self, store: BanStore, data: dict[str, Any]) -> dict[str, Any]:
        if not store.rules.enabled:
            return {"status": 0, "msg": ""}
        remote, login = _text(data, "remote"), _text(data, "login")
        protocol = _text(data, "protocol") or "?"
        ban = store.banned(remote)
        if ban is not None:
            log.info("refused %s %s user=<%s>: banned (%s)", remote, protocol, login,
                     ban.reason)
            return {"status": -1, "msg": refusal(ban, remote, self.clock())}
        if store.exempt(remote):  # never slowed either (the webmail's own sessions)
            return {"status": 0, "msg": ""}
        delay = max(store.next_delay(remote), store.account_delay(login))
        return {"status": math.ceil(delay), "msg": ""}

    def report(self, store: BanStore, data: dict[str, Any]) -> dict[str, Any]:
        if (not store.rules.enabled or data.get("success") is not False
                or data.get("policy_reject") is True
                or _text(data, "fail_type") not in COUNTED_FAILURES):
            return {"status": 0}
        remote, login = _text(data, "remote"), _text(data, "login")
        protocol = _text(data, "protocol") or "?"
        verdict = store.failed(remote, protocol, login)
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

    def answer(self, target: str, body: bytes) -> dict[str, Any]:
        """The answer to one request; BadRequest if its target or body is not one."""
        command, data = command_of(target), body_of(body)
        with self._using() as store:
            try:
                if command == "allow":
                    return self.allow(store, data)
                return self.report(store, data)
            except Exception:  # the store: never lock everyone out for it
                log.exception("policy %s failed; the login goes on unchecked", command)
                return {"status": 0, "msg": ""}

    def start(self, sock: socket.socket) -> None:
        """Serve on SOCK (bind_socket's), from a thread of its own."""
        self._http = _HTTPServer(sock, self)
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        args=(STOP_POLL_S,), name="security-policy",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end the open connections, close the store."""
        if self._http is not None and self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._http.close_connections()
            self._http.server_close()
        with self._lock:
            store = self.store
        store.close()


class _HTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a connection never holds the process up

    def __init__(self, sock: socket.socket, policy: PolicyServer) -> None:
        super().__init__(sock.getsockname(), PolicyHandler, bind_and_activate=False)
        self.socket.close()  # the one socketserver made: ours is bound already
        self.socket = sock
        self.policy = policy
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)  # its handler reads the end
                except OSError:
                    pass


class PolicyHandler(BaseHTTPRequestHandler):
    """One connection: its requests, one after another, answered in JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Dovecot's HTTP client expects
    default_request_version = "HTTP/1.0"  # a request line without one: never HTTP/0.9
    server: _HTTPServer
    raw_requestline: bytes  # handle_one_request's (not in the stubs)

    def handle(self) -> None:
        try:
            while True:
                self.connection.settimeout(IDLE_TIMEOUT_S)  # for the next request line
                self.close_connection = True
                self.handle_one_request()
                if self.close_connection:
                    break
        except ConnectionError:  # the client left mid-answer
            pass

    def parse_request(self) -> bool:
        """The library's parsing, then our limits on what it took."""
        self.connection.settimeout(READ_TIMEOUT_S)  # the request's first line came
        try:
            if not super().parse_request():
                return False  # answered (send_error) or an empty line
            self.check_head()
        except TimeoutError:
            self.send_error(400, "request too slow")
            return False
        except BadRequest as e:
            self.send_error(e.status, e.why)
            return False
        return True

    def check_head(self) -> None:
        line = self.raw_requestline
        if not line.endswith(b"\r\n"):
            raise BadRequest(400, "line not ended by CRLF")
        if len(line) > MAX_LINE:
            raise BadRequest(414, "request line too long")
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            raise BadRequest(400, "not an HTTP/1.x request")
        if self.headers.defects:  # a line that is no header: the parser stopped there
            raise BadRequest(400, "malformed header")
        fields = self.headers.items()
        sizes = [len(name) + len(value) + 4 for name, value in fields]
        if len(fields) > MAX_HEADERS or len(line) + sum(sizes) > MAX_HEAD:
            raise BadRequest(431, "headers too large")
        if any(size > MAX_LINE for size in sizes):
            raise BadRequest(431, "line too long")
        if any(not (name + value).isascii() or "\n" in value for name, value in fields):
            raise BadRequest(400, "malformed header")  # not ASCII, or folded
        for name in UNIQUE_HEADERS:
            if len(self.headers.get_all(name, [])) > 1:
                raise BadRequest(400, f"repeated {name.lower()} header")
        if self.command != "POST":
            raise BadRequest(405, f"{self.command} not allowed: POST only")

    def do_POST(self) -> None:
        try:
            payload = self.server.policy.answer(self.path, self.read_body())
        except BadRequest as e:
            self.send_error(e.status, e.why)
            return
        self.reply(200, payload)

    def read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise BadRequest(400, "only bodies with a Content-Length are taken")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise BadRequest(411, "Content-Length missing")
        if not length_text.isdigit() or not length_text.isascii():
            raise BadRequest(400, "Content-Length malformed")
        length = int(length_text)
        if length > MAX_BODY:
            raise BadRequest(413, f"body over {MAX_BODY} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise BadRequest(400, "request too slow") from None
        if len(body) < length:
            raise BadRequest(400, "body shorter than its Content-Length")
        return body

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Every refusal, the library's own as well: JSON, and the connection closed."""
        why = message or HTTPStatus(code).phrase
        log.warning("bad request: %s", why)
        self.reply(code, {"error": why}, close=True)

    def reply(self, status: int, payload: dict[str, Any], close: bool = False) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.connection.settimeout(WRITE_TIMEOUT_S)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 405:
            self.send_header("Allow", "POST")
        if close or self.close_connection:
            self.send_header("Connection", "close")  # and close_connection is set
        self.end_headers()
        self.wfile.write(body)

    def version_string(self) -> str:  # the Server header
        return "appliance-security-policy"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)  # each request, timeouts: its address is '' anyway


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
    return sock


def load_rules(path: Path) -> Rules:
    """The rules security.json holds; OSError, ValueError or TypeError if it cannot."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return rules_from_dict(data)


def serve(rules: Rules, socket_path: Path) -> None:
    as_root = os.geteuid() == 0
    sock = bind_socket(socket_path, (paths.SECURITY_USER, DOVECOT_GROUP) if as_root else None)
    drop_privileges(paths.SECURITY_USER)
    signals = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}
    # blocked before any thread starts, so every thread inherits the mask and the main
    # thread alone takes them, in sigwait below
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    server = PolicyServer(BanStore(paths.BANS_DB, rules))
    server.start(sock)
    log.info("listening on %s (ban after %d failures within %s)", socket_path,
             rules.max_failures, format_duration(rules.find_time))
    while signal.sigwait(signals) == signal.SIGHUP:
        try:
            new = load_rules(paths.SECURITY_CONFIG)
        except (OSError, ValueError, TypeError) as e:
            log.error("SIGHUP: keeping the old rules: %s: %s", paths.SECURITY_CONFIG, e)
            continue
        server.replace_store(BanStore(paths.BANS_DB, new))
        log.info("SIGHUP: rules re-read (ban after %d failures within %s)",
                 new.max_failures, format_duration(new.find_time))
    log.info("shutting down")
    server.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        rules = load_rules(paths.SECURITY_CONFIG)
    except (OSError, ValueError, TypeError) as e:
        log.error("cannot start: %s: %s", paths.SECURITY_CONFIG, e)
        return 1
    serve(rules, paths.SECURITY_POLICY_SOCKET)
    return 0
