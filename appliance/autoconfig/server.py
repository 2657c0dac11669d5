"""The autoconfig server: nginx passes it the client autoconfiguration requests of port
443 over a Unix socket, and it answers them from autoconfig.json (documents.py):

    GET  /mail/config-v1.1.xml                          Thunderbird (autoconfig.DOMAIN)
    GET  /.well-known/autoconfig/mail/config-v1.1.xml   Thunderbird (any of our names)
    POST /autodiscover/autodiscover.xml                 Outlook (any case)
    GET  /mobileconfig?email=ADDRESS                    an Apple configuration profile

HTTP/1.0 from nginx, one request a connection (the standard library's
BaseHTTPRequestHandler on socketserver's threading Unix stream server). A body is read
only for autodiscover, with a Content-Length of at most documents.MAX_REQUEST bytes
(nginx refuses bigger ones first); reads have a deadline. autoconfig.json is read again
whenever it changed, so an apply needs no signal here; while it cannot be read the
server answers 503.

`appliance autoconfig-server` runs it under supervisord: it binds its socket as root
(owner nobody, group www-data: nginx's workers), then runs as nobody. SIGTERM stops it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from appliance import paths
from appliance.autoconfig import documents
from appliance.autoconfig.documents import BadRequest, Site, UnknownDomain
from appliance.privileges import drop_privileges
from appliance.security.policy import bind_socket

log = logging.getLogger("appliance.autoconfig")

USER = "nobody"
NGINX_GROUP = "www-data"
READ_TIMEOUT_S = 10.0
STOP_POLL_S = 0.1
XML_TYPE = "application/xml; charset=utf-8"


class SiteFile:
    """autoconfig.json, read again when its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._site: Site | None = None

    def site(self) -> Site | None:
        """The Site, or None (logged) while the file cannot be read."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            with self._lock:
                if stamp != self._stamp:
                    self._site = documents.site_from_dict(json.loads(self.path.read_text()))
                    self._stamp = stamp
                return self._site
        except (OSError, ValueError) as e:
            log.error("%s: %s", self.path, e)
            return None


def _time_of_day(now: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"


def answer(site: Site, method: str, target: str, host: str,
           body: bytes, now: float) -> tuple[int, str, bytes, dict[str, str]]:
    """(status, content type, body, more headers) for one request."""
    parts = urlsplit(target)
    path, query = parts.path, parse_qs(parts.query)
    if path in documents.THUNDERBIRD_PATHS:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n", {"Allow": "GET, HEAD"}
        email = (query.get("emailaddress") or [""])[0]
        domain = documents.thunderbird_domain(site, host, email)
        return 200, XML_TYPE, documents.thunderbird(site, domain), {}
    if path.lower() == documents.AUTODISCOVER_PATH:
        if method != "POST":
            return 405, "text/plain", b"POST only\n", {"Allow": "POST"}
        status, document = documents.answer_autodiscover(site, body, _time_of_day(now))
        return status, XML_TYPE, document, {}
    if path == documents.MOBILECONFIG_PATH:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n", {"Allow": "GET, HEAD"}
        emails = query.get("email", [])
        try:
            if len(emails) != 1:
                raise BadRequest("one email=ADDRESS wanted")
            local, domain = documents.split_address(emails[0], site)
            email = f"{local}@{domain}"
            profile = documents.mobileconfig(site, email, local)
        except BadRequest as e:
            return 400, "text/plain", f"{e}\n".encode(), {}
        except UnknownDomain as e:
            return 404, "text/plain", f"{e}\n".encode(), {}
        # DOMAIN is one of ours (checked), so safe in a header
        disposition = f'attachment; filename="{domain}.mobileconfig"'
        return 200, documents.MOBILECONFIG_TYPE, profile, {"Content-Disposition": disposition}
    return 404, "text/plain", b"not found\n", {}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, sites: SiteFile) -> None:
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()  # the one socketserver made: ours is bound already
        self.socket = sock
        self.sites = sites


class Handler(BaseHTTPRequestHandler):
    """One request from nginx, answered and the connection closed."""

    protocol_version = "HTTP/1.0"
    timeout = READ_TIMEOUT_S  # the socket's deadline for every read and write
    server: _Server

    def do_GET(self) -> None:
        self.respond(b"")

    def do_HEAD(self) -> None:
        self.respond(b"")

    def do_POST(self) -> None:
        try:
            body = self.read_body()
        except BadRequest as e:
            code = 413 if "over" in str(e) else 400
            self.send(code, "text/plain", f"{e}\n".encode(), {})
            return
        self.respond(body)

    def read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise BadRequest("only bodies with a Content-Length are taken")
        text = self.headers.get("Content-Length", "0")
        if not text.isascii() or not text.isdigit():
            raise BadRequest("Content-Length malformed")
        length = int(text)
        if length > documents.MAX_REQUEST:
            raise BadRequest(f"body over {documents.MAX_REQUEST} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise BadRequest("request too slow") from None
        if len(body) < length:
            raise BadRequest("body shorter than its Content-Length")
        return body

    def respond(self, body: bytes) -> None:
        site = self.server.sites.site()
        if site is None:
            self.send(503, "text/plain", b"autoconfig is not ready\n", {})
            return
        status, kind, document, headers = answer(
            site, self.command, self.path, self.headers.get("Host", ""), body, time.time())
        self.send(status, kind, document, headers)

    def send(self, status: int, kind: str, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def version_string(self) -> str:
        return "appliance-autoconfig"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)  # nginx logs every request; the address here is ''


class AutoconfigServer:
    def __init__(self, sites: SiteFile) -> None:
        self.sites = sites
        self._http: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, sock: socket.socket) -> None:
        self._http = _Server(sock, self.sites)
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        args=(STOP_POLL_S,), name="autoconfig", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._http is not None and self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._http.server_close()


def serve(config: Path, socket_path: Path) -> None:
    as_root = os.geteuid() == 0
    sock = bind_socket(socket_path, (USER, NGINX_GROUP) if as_root else None)
    drop_privileges(USER)
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # before any thread starts
    server = AutoconfigServer(SiteFile(config))
    server.start(sock)
    log.info("listening on %s", socket_path)
    signal.sigwait(signals)
    log.info("shutting down")
    server.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    serve(paths.AUTOCONFIG_CONFIG, paths.AUTOCONFIG_SOCKET)
    return 0
