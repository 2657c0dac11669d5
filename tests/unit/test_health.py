"""The healthcheck's probes that do not connect: a listening socket in the kernel's table."""

from __future__ import annotations

import socket
from pathlib import Path

from appliance.commands import healthcheck as health


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_listening_socket_is_seen_and_a_closed_one_is_not() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    assert not health.listening(port)  # bound, not listening
    server.listen()
    try:
        assert health.listening(port)
        assert health.check_handoff(port) is None
        assert not health.listening(port, host="127.0.0.2")  # only 127.0.0.1 listens
    finally:
        server.close()
    assert not health.listening(port)
    assert health.check_handoff(port) == (
        f"Postfix hand-off 127.0.0.1:{port}: nothing listens")


def test_a_socket_on_every_address_serves_loopback() -> None:
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        assert health.listening(server.getsockname()[1], host="127.0.0.1")


def test_the_kernel_table_is_read_in_host_byte_order(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(  # 127.0.0.1:10025 LISTEN, 10.0.0.5:143 ESTABLISHED, as Linux on x86
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
        "   0: 0100007F:2729 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n"
        "   1: 0500000A:008F 0100000A:D431 01 00000000:00000000 00:00000000 00000000\n")
    import sys
    if sys.byteorder == "little":
        assert health.listening(10025, tables=(table,))
    assert not health.listening(143, host="10.0.0.5", tables=(table,))  # not listening
    assert not health.listening(10026, tables=(table,))


def test_imap_fails_when_nothing_listens() -> None:
    port = free_port()
    assert health.check_imap(port) == f"IMAP {port}: nothing listens"
