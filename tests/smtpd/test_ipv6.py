"""IPv6: one dual-stack listener takes IPv6 and IPv4 clients; each is seen, traced,
forwarded to Postfix and counted in its own spelling (IPv4 never as ::ffff:a.b.c.d)."""

from __future__ import annotations

import smtplib
import socket

import pytest

from appliance.smtpd import replies
from appliance.smtpd.main import ANY_ADDRESS, listen_socket
from appliance.smtpd.received import address_literal
from appliance.smtpd.server import ConnectionLimits
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import WAIT, FakePostfix, in_thread, message, port


def _send(host: str, daemon_port: int) -> tuple[int, bytes]:
    with smtplib.SMTP(host, daemon_port, local_hostname="client.example.org",
                      timeout=WAIT) as s:
        s.ehlo()
        refused = s.sendmail("sender@example.net", ["alice@example.com"], message("v6"))
        assert refused == {}
        return s.noop()


def test_the_default_listener_is_one_dual_stack_socket() -> None:
    sock = listen_socket(0)
    try:
        assert sock.family == socket.AF_INET6
        assert sock.getsockname()[0] == ANY_ADDRESS
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    finally:
        sock.close()


@pytest.mark.parametrize(("client", "seen", "literal"), [
    ("::1", "IPv6:::1", "[IPv6:::1]"),
    ("127.0.0.1", "127.0.0.1", "[127.0.0.1]"),
])
async def test_ipv6_and_ipv4_clients_on_one_listener(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, client: str, seen: str,
    literal: str,
) -> None:
    daemon = await start_daemon("smtp", host=ANY_ADDRESS)

    code, _ = await in_thread(_send, client, port(daemon))

    assert code == 250
    got = fake_postfix.messages[-1]
    trace = next(line for line in got.content.decode().split("\r\n")
                 if line.startswith("Received: "))
    assert trace == f"Received: from client.example.org (unknown {literal})"
    assert got.xforward["ADDR"] == seen  # Postfix refuses an IPv6 ADDR without "IPv6:"


def test_received_shows_an_ipv6_client_as_an_ipv6_address_literal() -> None:
    assert address_literal("2001:DB8:0:0::25") == "IPv6:2001:db8::25"
    assert address_literal("198.51.100.7") == "198.51.100.7"
    assert address_literal("?") == "?"
    assert address_literal("x]) evil") == "x???evil"  # space, ] and ) each a ?


def test_an_ipv6_client_host_is_capped_by_its_64() -> None:
    limits = ConnectionLimits(instances=40, per_ip=2)
    assert limits.acquire("2001:db8:7:1::1") is None
    assert limits.acquire("2001:db8:7:1::2") is None  # another address, the same host
    assert limits.acquire("2001:db8:7:1:ffff::3") == replies.TOO_MANY_FROM_ADDRESS
    assert limits.acquire("2001:db8:7:2::1") is None  # another /64
    limits.release("2001:db8:7:1::2")
    assert limits.acquire("2001:db8:7:1::9") is None
    assert limits.acquire("198.51.100.7") is None and limits.acquire("198.51.100.8") is None
