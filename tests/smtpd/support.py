"""Helpers for the in-process SMTP daemon tests: a fake Postfix, settings, clients.

Everything runs in the test's event loop; blocking smtplib clients run in a worker
thread (`in_thread`). Every network wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from appliance import config
from appliance.services import smtpd as render_smtpd
from appliance.smtpd.auth import hash_password

T = TypeVar("T")

HOSTNAME = "mail.example.com"
DOMAIN = "example.com"
CLIENT_HELO = "client.example.org"
PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD, rounds=4)
INTERNET = ["10.99.0.0/16"]  # loopback is *not* local: our test client is "the internet"
LOOPBACK = ["127.0.0.0/8"]

SOCKET_TIMEOUT = 5.0  # every blocking socket operation of a client
WAIT = 10.0  # every await on the network or on a worker thread

QUEUE_ID = "ABC123"
POSTFIX_QUEUED = f"250 2.0.0 Ok: queued as {QUEUE_ID}"


# -- settings ---------------------------------------------------------------------------


def toml_text(local_networks: list[str], extra: str = "",
              users: tuple[str, ...] = ("alice", "bob")) -> str:
    """appliance.toml for example.com (mail.example.com) with these users, password PASSWORD."""
    nets = ", ".join(f'"{n}"' for n in local_networks)
    parts = [
        '[system]\nhostname = "mail"\ndomain = "example.com"\n',
        f"[network]\nlocal_networks = [{nets}]\n",
        extra,
    ]
    parts += [f'\n[users.{u}]\npassword = "{HASH}"\n' for u in users]
    return "\n".join(parts)


def make_settings(
    *,
    cert: Path,
    key: Path,
    handoff_port: int,
    local_networks: list[str] | None = None,
    extra_toml: str = "",
) -> dict[str, Any]:
    """The daemon settings for a test, in their JSON form (a test may change them; a
    Daemon takes them through `from_dict`, the daemons' own typed constructor)."""
    settings = render_smtpd.settings(
        config.parse(toml_text(local_networks or INTERNET, extra_toml))
    ).to_dict()
    settings["tls"] = {"cert": str(cert), "key": str(key), "report_dir": ""}
    state = Path(tempfile.mkdtemp(prefix="smtpd-state-"))
    settings["state_dir"] = str(state)
    settings["queue_dir"] = str(state)  # the free-space check at MAIL reads a real fs
    settings["dkim_keys"] = str(state / "dkim")
    settings["bans_db"] = str(state / "bans.sqlite")
    # the ban store's growing delays would slow every test that fails a login
    settings["security"]["failure_delay"] = 0
    # Greet at once unless a test asks for earlytalker's pause (SME waits 1 s).
    if "[smtpd.earlytalker]" not in extra_toml:
        settings["plugin_settings"]["earlytalker"]["wait"] = 0
    # spamd and clamd run only in the container: these tests are about the SMTP engine.
    # The content filters are tested against their protocols in tests/unit/plugins and
    # against the real daemons in tests/e2e.
    for section in ("spamassassin", "clamav"):
        if f"[{section}]" not in extra_toml:
            settings["plugin_settings"][section]["enabled"] = False
    settings["handoff"] = dict(settings["handoff"], host="127.0.0.1", port=handoff_port,
                               timeout=5)
    return settings


def port(daemon: Any) -> int:
    """The ephemeral port a test Daemon listens on."""
    return int(daemon.sock.getsockname()[1])


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- waiting ----------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool], timeout: float = WAIT,
                     what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking client in a worker thread, with a deadline."""
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), WAIT)


# -- the fake Postfix -------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    xforward: dict[str, str]


class XForwardSMTP(SMTP):
    """aiosmtpd plus Postfix's XFORWARD command (attributes apply to the next message)."""

    # Postfix takes message lines of any length (line_length_limit only chops them in the
    # queue file); aiosmtpd would refuse a line over 1000 bytes.
    line_length_limit = 1 << 20

    def __init__(self, fake: FakePostfix, **kwargs: Any) -> None:
        super().__init__(fake, **kwargs)
        self.fake = fake
        self.xforward: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            self.fake.protocols.add(self)
            self.fake.connections += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.fake.protocols.discard(self)
        super().connection_lost(error)

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        for item in (arg or "").split():
            name, _, value = item.partition("=")
            self.xforward[name.upper()] = value
        self.fake.commands.append(f"XFORWARD {arg}")
        await self.push("250 2.0.0 Ok")


@dataclass
class FakePostfix:
    """Records what it is handed; refuses the recipients in `refuse` with their reply."""

    refuse: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    protocols: set[XForwardSMTP] = field(default_factory=set)
    connections: int = 0
    server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: XForwardSMTP(self, hostname="postfix.test"), "127.0.0.1", 0
        )

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Hang up on every client, as Postfix does after its idle timeout."""
        for proto in list(self.protocols):
            if proto.transport is not None:
                proto.transport.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.drop_connections()
        await eventually(lambda: not self.protocols, what="fake Postfix to close")

    # aiosmtpd handler hooks

    async def handle_MAIL(self, server: XForwardSMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.commands.append(f"MAIL {address}")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: XForwardSMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        self.commands.append(f"RCPT {address}")
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_RSET(self, server: XForwardSMTP, session: Session,
                          envelope: Envelope) -> str:
        self.commands.append("RSET")
        server.xforward = {}
        return "250 2.0.0 Ok"

    async def handle_DATA(self, server: XForwardSMTP, session: Session,
                          envelope: Envelope) -> str:
        self.commands.append("DATA")
        self.messages.append(Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            content=envelope.original_content or b"",
            mail_options=list(envelope.mail_options),
            xforward=dict(server.xforward),
        ))
        server.xforward = {}
        return POSTFIX_QUEUED


# -- clients ----------------------------------------------------------------------------


def insecure_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client(port: int) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_HELO, timeout=SOCKET_TIMEOUT)


def tls_client(port: int) -> smtplib.SMTP_SSL:
    return smtplib.SMTP_SSL("127.0.0.1", port, local_hostname=CLIENT_HELO,
                            timeout=SOCKET_TIMEOUT, context=insecure_tls())


def line(reply: tuple[int, bytes]) -> str:
    """smtplib's (code, text) as the reply line the server sent."""
    code, text = reply
    return f"{code} {text.decode()}"


def auth_plain(login: str, password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{login}\0{password}".encode()).decode()


HEADERS = b"From: sender@example.net\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"


def message(subject: str = "hello", body: str = "Hi there.",
            from_: str = "sender@example.net") -> bytes:
    return (f"From: {from_}\r\nTo: someone@example.com\r\nSubject: {subject}\r\n"
            f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
            f"\r\n{body}\r\n").encode()


@dataclass
class Outcome:
    """Every reply of one transaction, as lines."""

    mail: str
    rcpts: list[str]
    data: str | None  # None: DATA was not sent (no recipient accepted)


def transaction(s: smtplib.SMTP, sender: str, rcpts: list[str], body: bytes,
                mail_options: tuple[str, ...] = ()) -> Outcome:
    """MAIL, RCPT..., DATA on an open smtplib session; replies as lines, never raises."""
    mail = line(s.mail(sender, list(mail_options)))
    replies_ = [line(s.rcpt(r)) for r in rcpts]
    data = None
    if mail.startswith("250") and any(r.startswith("250") for r in replies_):
        try:
            data = line(s.data(body))
        except smtplib.SMTPDataError as e:  # DATA itself refused (no 354)
            data = f"{e.smtp_code} {e.smtp_error.decode()}"
    return Outcome(mail, replies_, data)


def send(port: int, sender: str, rcpts: list[str], body: bytes | None = None,
         mail_options: tuple[str, ...] = ()) -> Outcome:
    """One plain-text session on `port`: EHLO, one transaction, QUIT."""
    with client(port) as s:
        s.ehlo()
        return transaction(s, sender, rcpts, body if body is not None else message(),
                           mail_options)


class RawClient:
    """A byte-level SMTP client on asyncio streams, for what smtplib will not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, tls: bool = False) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=insecure_tls() if tls else None),
            WAIT,
        )
        return cls(reader, writer)

    async def read_line(self) -> str:
        """One line without its CRLF; "" at end of stream."""
        data = await asyncio.wait_for(self.reader.readline(), WAIT)
        return data.decode().rstrip("\r\n")

    async def reply(self) -> list[str]:
        """A whole (multi-line) reply."""
        lines = []
        while True:
            text = await self.read_line()
            if not text:
                raise ConnectionError(f"connection closed after {lines!r}")
            lines.append(text)
            if text[3:4] != "-":
                return lines

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), WAIT)

    async def command(self, text: str) -> str:
        """Send one command line; the last line of its reply."""
        await self.send(text.encode() + b"\r\n")
        return (await self.reply())[-1]

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), WAIT) == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), WAIT)
        except (ConnectionError, OSError):
            pass
