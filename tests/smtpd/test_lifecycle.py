"""Idle timeout, and stopping (SIGTERM): stop accepting, let sessions finish, then hang up."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    HEADERS,
    HOSTNAME,
    QUEUE_ID,
    WAIT,
    FakePostfix,
    RawClient,
    eventually,
    port,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)
GREETING = replies.GREETING.format(hostname=HOSTNAME)
TIMED_OUT = replies.TIMEOUT.format(hostname=HOSTNAME)


async def open_transaction(c: RawClient) -> None:
    """Greeting, EHLO, MAIL, RCPT, DATA: ready for the message."""
    assert await c.read_line() == GREETING
    await c.send(b"EHLO client.example.org\r\n")
    await c.reply()
    assert await c.command("MAIL FROM:<sender@example.net>") == replies.OK_SENDER
    assert await c.command("RCPT TO:<alice@example.com>") == replies.OK_RECIPIENT
    assert (await c.command("DATA")).startswith("354 ")


async def test_silent_client_is_dropped_after_the_timeout_and_its_slot_freed(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp", timeout=0.3)
    c = await RawClient.connect(port(daemon))
    try:
        assert await c.read_line() == GREETING
        started = time.monotonic()
        assert await c.read_line() == TIMED_OUT  # says why, as Postfix does
        assert await c.closed_by_server()  # bounded by WAIT
        assert time.monotonic() - started >= 0.25
    finally:
        await c.close()
    await eventually(lambda: daemon.limits.total == 0, what="the slot to be released")


async def test_client_sending_data_steadily_is_not_cut_off_by_the_idle_timeout(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    """In DATA, `smtpd.timeout` is "seconds a client may stay silent". A client that
    uploads a big message over a slow link that keeps the minimum rate (scaled down
    here with the timeout) is never silent, however long DATA takes."""
    daemon = await start_daemon("smtp", timeout=0.5, extra_toml="[smtpd]\nmin_data_rate = 50\n")
    c = await RawClient.connect(port(daemon))
    try:
        await open_transaction(c)
        await c.send(HEADERS + b"Subject: slow link\r\n\r\n")
        try:
            for i in range(12):  # 1.2 s of DATA, never silent for more than 0.1 s
                await asyncio.sleep(0.1)
                await c.send(b"line %d\r\n" % i)
            await c.send(b".\r\n")
            final = await c.reply()
        except (ConnectionError, OSError) as e:
            final = [f"connection lost: {e!r}"]
    finally:
        await c.close()

    assert final == [QUEUED], (
        "the daemon hung up on a client that was still sending DATA: aiosmtpd resets its "
        "idle timer only when a command line arrives, not while DATA is received "
        "(see the bug report: appliance/smtpd/server.py should reset it in data_received)"
    )


async def test_a_command_trickled_byte_by_byte_is_cut_off_at_the_timeout(
    start_daemon: StartDaemon,
) -> None:
    """Slowloris: bytes that never complete a command do not keep the slot alive."""
    daemon = await start_daemon("smtp", timeout=0.5)
    c = await RawClient.connect(port(daemon))
    started = time.monotonic()
    try:
        assert await c.read_line() == GREETING
        with pytest.raises((ConnectionError, OSError)):
            for byte in b"EHLO " + b"x" * 100:  # one byte every 0.1 s, never a full line
                await asyncio.sleep(0.1)
                await c.send(bytes([byte]))
                if c.reader.at_eof() or c.reader._buffer:  # noqa: SLF001 - the 421 arrived
                    raise ConnectionError("server hung up")
        assert await c.read_line() == replies.TIMEOUT.format(hostname=HOSTNAME)
        assert time.monotonic() - started < 2
    finally:
        await c.close()
    await eventually(lambda: daemon.limits.total == 0, what="the slot to be released")


async def test_data_slower_than_the_minimum_rate_is_cut_off_with_421(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    """Never silent, but 20 bytes/s against a minimum of 100: gone after about
    timeout + bytes/rate, with nothing queued."""
    daemon = await start_daemon("smtp", timeout=0.5,
                                extra_toml="[smtpd]\nmin_data_rate = 100\n")
    c = await RawClient.connect(port(daemon))
    started = time.monotonic()
    lines: list[str] = []
    try:
        await open_transaction(c)
        await c.send(HEADERS + b"Subject: trickle\r\n\r\n")
        try:
            for _ in range(40):
                await asyncio.sleep(0.1)
                await c.send(b"ab")
                if c.reader._buffer:  # noqa: SLF001 - a reply arrived mid-DATA
                    break
            lines.append(await c.read_line())
        except (ConnectionError, OSError):
            pass
    finally:
        await c.close()
    assert lines == [TIMED_OUT]
    assert time.monotonic() - started < 3.5
    assert fake_postfix.messages == []


async def test_stop_refuses_new_connections_and_lets_a_session_finish(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    the_port = port(daemon)
    c = await RawClient.connect(the_port)
    try:
        await open_transaction(c)
        stopping = asyncio.create_task(daemon.stop(grace=WAIT))
        assert daemon.server is not None
        server = daemon.server
        await eventually(lambda: not server.is_serving(), what="the listener to close")
        with pytest.raises(OSError):
            await RawClient.connect(the_port)

        await c.send(HEADERS + b"Subject: last one\r\n\r\nbody\r\n.\r\n")
        assert await c.reply() == [QUEUED]
        assert not stopping.done()  # still waiting for our session
        assert await c.command("QUIT") == replies.BYE
        await asyncio.wait_for(stopping, WAIT)
    finally:
        await c.close()
    assert len(fake_postfix.messages) == 1


async def test_stop_after_the_grace_period_says_421_before_hanging_up(
    start_daemon: StartDaemon,
) -> None:
    """RFC 5321 3.8: a server shutting down closes a session only after a 421 reply."""
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        assert await c.read_line() == GREETING
        await asyncio.wait_for(daemon.stop(grace=0.2), WAIT)
        last = await c.read_line()
    finally:
        await c.close()
    assert daemon.limits.total == 0
    assert last == replies.SHUTTING_DOWN, (
        f"stop() hung up on an idle session with {last!r} instead of "
        "replies.SHUTTING_DOWN (the constant is defined but never sent)"
    )
