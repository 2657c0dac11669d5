"""The PROXY protocol on the SMTP daemons (network.trusted_proxies), through the real daemon.

A trusted proxy's connection starts with a PROXY header (v2 binary or v1 text) and the
address in it is the client's for everything: the caps, relay, the Received line, what
Postfix is told, the logs. Anyone else who sends one is hung up on; a trusted proxy
that sends none is hung up on after the header's timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import struct
from collections.abc import Callable

import pytest
from aiosmtpd.proxy_protocol import V2_SIGNATURE

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection
from appliance.smtpd.main import Daemon
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    CLIENT_HELO,
    SOCKET_TIMEOUT,
    WAIT,
    FakePostfix,
    RawClient,
    eventually,
    in_thread,
    insecure_tls,
    message,
    port,
)
from tests.smtpd.test_received import trace

CLIENT = "203.0.113.77"  # the address a load balancer says the client has
CLIENT_PORT = 40123
LOOPBACK_PROXY = ["127.0.0.0/8"]  # our test client is the load balancer
GREETING_RE = re.compile(r"220 mail\.example\.com ")


def proxy_v2(source: str = CLIENT, source_port: int = CLIENT_PORT, *,
             local: bool = False) -> bytes:
    """A PROXY v2 header (TCP over IPv4 or IPv6), or a LOCAL one (a health check)."""
    if local:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    src = ipaddress.ip_address(source)
    if src.version == 4:
        family, dst = 0x11, ipaddress.ip_address("192.0.2.25")
    else:
        family, dst = 0x21, ipaddress.ip_address("2001:db8::25")
    body = src.packed + dst.packed + struct.pack("!HH", source_port, 25)
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def proxy_v1(source: str = CLIENT, source_port: int = CLIENT_PORT) -> bytes:
    return f"PROXY TCP4 {source} 192.0.2.25 {source_port} 25\r\n".encode()


HEADERS = [pytest.param(proxy_v2, id="v2"), pytest.param(proxy_v1, id="v1")]


async def proxied(daemon: Daemon, header: bytes) -> RawClient:
    c = await RawClient.connect(port(daemon))
    await c.send(header)
    return c


async def mail_through(c: RawClient, rcpt: str = "alice@example.com") -> str:
    """One message on an open session after the greeting; the reply to its end."""
    assert (await c.command(f"EHLO {CLIENT_HELO}")).startswith("250 ")
    assert (await c.command("MAIL FROM:<sender@example.net>")).startswith("250 ")
    answer = await c.command(f"RCPT TO:<{rcpt}>")
    if not answer.startswith("250 "):
        return answer
    assert (await c.command("DATA")).startswith("354 ")
    await c.send(message("proxied"))
    return await c.command(".")


def open_conn(daemon: Daemon) -> Connection:
    [proto] = list(daemon.limits.open)
    assert proto.conn is not None
    return proto.conn


@pytest.mark.parametrize("header", HEADERS)
async def test_a_trusted_proxys_header_gives_the_client_address_to_everything(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, header: Callable[[], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.smtpd")
    daemon = await start_daemon("smtp", trusted_proxies=LOOPBACK_PROXY)
    c = await proxied(daemon, header())
    try:
        assert GREETING_RE.match(await c.read_line())
        conn = open_conn(daemon)
        assert (conn.remote_ip, conn.remote_port) == (CLIENT, CLIENT_PORT)
        assert dict(daemon.limits.by_ip) == {CLIENT: 1}  # counted as the client
        assert (await mail_through(c)).startswith("250 ")
    finally:
        await c.close()
    [got] = fake_postfix.messages
    assert f"(unknown [{CLIENT}])" in trace(got.content)
    assert got.xforward["ADDR"] == CLIENT  # and Postfix's own log agrees
    version = "v2" if header is proxy_v2 else "v1"
    assert f"smtp {CLIENT}:{CLIENT_PORT} by PROXY {version} from 127.0.0.1" in caplog.text


async def test_relay_is_judged_by_the_address_in_the_header(
    start_daemon: StartDaemon, fake_postfix: FakePostfix,
) -> None:
    """The header's address is in local_networks, the proxy's is not: relay is allowed
    for the proxied client and refused to the same proxy connecting by itself."""
    daemon = await start_daemon("smtp", local_networks=["203.0.113.0/24"],
                                trusted_proxies=["127.0.0.1/32"])
    c = await proxied(daemon, proxy_v2())
    try:
        assert GREETING_RE.match(await c.read_line())
        assert (await mail_through(c, "someone@elsewhere.example")).startswith("250 ")
    finally:
        await c.close()

    own = await proxied(daemon, proxy_v2(local=True))  # LOCAL: the proxy's own address
    try:
        assert GREETING_RE.match(await own.read_line())
        assert open_conn(daemon).remote_ip == "127.0.0.1"
        assert (await mail_through(own, "someone@elsewhere.example")).startswith("5")
    finally:
        await own.close()
    assert [m.rcpt_tos for m in fake_postfix.messages] == [["someone@elsewhere.example"]]


async def test_connection_caps_count_the_clients_behind_the_proxy(
    start_daemon: StartDaemon,
) -> None:
    """instances_per_ip applies to each client, not to the one proxy they all come by."""
    daemon = await start_daemon("smtp", extra_toml="[smtpd.smtp]\ninstances_per_ip = 1\n",
                                trusted_proxies=LOOPBACK_PROXY)
    clients = [await proxied(daemon, proxy_v2(f"203.0.113.{n}")) for n in (1, 2)]
    again = await proxied(daemon, proxy_v2("203.0.113.1", 40999))
    try:
        for c in clients:
            assert GREETING_RE.match(await c.read_line())
        assert await again.read_line() == replies.TOO_MANY_FROM_ADDRESS
        assert await again.closed_by_server()
    finally:
        for c in (*clients, again):
            await c.close()
    await eventually(lambda: daemon.limits.total == 0, what="every slot to be released")


@pytest.mark.parametrize("header", HEADERS)
async def test_a_proxy_header_from_an_untrusted_address_closes_the_connection(
    start_daemon: StartDaemon, header: Callable[[], bytes], caplog: pytest.LogCaptureFixture,
) -> None:
    """Loopback is not a trusted proxy here: its header would forge a client address.
    Clients that send none keep working as before."""
    daemon = await start_daemon("smtp", trusted_proxies=["192.0.2.0/24"])
    c = await proxied(daemon, header() + f"EHLO {CLIENT_HELO}\r\n".encode())
    try:
        said = await asyncio.wait_for(c.reader.read(), WAIT)  # to the end of the stream
    finally:
        await c.close()
    assert b"250" not in said  # at most the greeting: no command was answered
    assert ("smtp 127.0.0.1 closed: PROXY header from an address not in "
            "network.trusted_proxies") in caplog.text
    await eventually(lambda: daemon.limits.total == 0, what="the slot to be released")

    plain = await RawClient.connect(port(daemon))
    try:
        assert GREETING_RE.match(await plain.read_line())
        assert open_conn(daemon).remote_ip == "127.0.0.1"
        assert (await mail_through(plain)).startswith("250 ")
    finally:
        await plain.close()


async def test_a_header_split_across_packets_is_still_refused(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp")  # no trusted proxies at all (the default)
    c = await RawClient.connect(port(daemon))
    try:
        await c.send(b"PRO")
        await asyncio.sleep(0)  # let the daemon see the first piece alone
        await c.send(b"XY TCP4 198.51.100.9 192.0.2.25 1 25\r\n")
        assert b"250" not in await asyncio.wait_for(c.reader.read(), WAIT)
    finally:
        await c.close()


async def test_a_trusted_proxy_without_a_header_is_closed_after_the_timeout(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = await start_daemon("smtp", trusted_proxies=LOOPBACK_PROXY, timeout=0.5)
    c = await RawClient.connect(port(daemon))
    try:
        # no greeting and no reply: the proxy is hung up on, after its header's timeout
        assert await asyncio.wait_for(c.reader.read(), WAIT) == b""
    finally:
        await c.close()
    assert ("smtp 127.0.0.1 closed: no PROXY header within 0.5 s from a trusted proxy"
            in caplog.text)
    assert not daemon.limits.open and daemon.limits.total == 0


async def test_a_trusted_proxy_sending_smtp_instead_of_a_header_is_closed(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = await start_daemon("smtp", trusted_proxies=LOOPBACK_PROXY)
    c = await proxied(daemon, f"EHLO {CLIENT_HELO}\r\n".encode())
    try:
        assert await asyncio.wait_for(c.reader.read(), WAIT) == b""
    finally:
        await c.close()
    assert "smtp 127.0.0.1 closed: bad PROXY header from a trusted proxy" in caplog.text


def proxied_tls_greeting(daemon_port: int, header: bytes) -> tuple[bytes, str]:
    """465 behind a load balancer: the header in clear and the client's first TLS bytes
    in one write (as a proxy may coalesce them), then the greeting inside TLS."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = insecure_tls().wrap_bio(incoming, outgoing)
    with socket.create_connection(("127.0.0.1", daemon_port), timeout=SOCKET_TIMEOUT) as sock:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(header + outgoing.read())
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            try:
                if tls.version() is None:
                    tls.do_handshake()
                greeting += tls.read(4096)
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError(f"closed after {greeting!r}") from None
                incoming.write(data)
            if outgoing.pending:
                sock.sendall(outgoing.read())
        return greeting, str(tls.version())


async def test_smtps_reads_the_header_before_tls(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.smtpd")
    daemon = await start_daemon("smtps", trusted_proxies=LOOPBACK_PROXY)

    greeting, version = await in_thread(proxied_tls_greeting, port(daemon), proxy_v2())

    assert GREETING_RE.match(greeting.decode())
    assert version.startswith("TLSv1.")
    assert f"smtps {CLIENT}:{CLIENT_PORT} by PROXY v2 from 127.0.0.1" in caplog.text
    await eventually(lambda: daemon.limits.total == 0, what="the slot to be released")
    # a client straight to 465 (not a proxy here) still gets TLS from the first byte
    direct = await start_daemon("smtps", trusted_proxies=["192.0.2.0/24"])
    c = await RawClient.connect(port(direct), tls=True)
    try:
        assert GREETING_RE.match(await c.read_line())
        conn = open_conn(direct)
        assert conn.remote_ip == "127.0.0.1" and conn.tls and conn.tls_version
    finally:
        await c.close()


async def test_smtps_closes_an_untrusted_proxy_header(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = await start_daemon("smtps")
    with pytest.raises(ConnectionError):
        await in_thread(proxied_tls_greeting, port(daemon), proxy_v2())
    assert ("smtps 127.0.0.1 closed: PROXY header from an address not in "
            "network.trusted_proxies") in caplog.text
