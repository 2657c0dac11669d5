"""Connection caps (SME Instances / InstancesPerIP): 421 instead of the greeting."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.smtpd import replies, storage
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import HOSTNAME, RawClient, eventually, port

GREETING = replies.GREETING.format(hostname=HOSTNAME)


@pytest.mark.parametrize(
    ("caps", "refusal"),
    [
        pytest.param("instances = 40\ninstances_per_ip = 2\n", replies.TOO_MANY_FROM_ADDRESS,
                     id="per-ip"),
        pytest.param("instances = 2\ninstances_per_ip = 5\n", replies.TOO_MANY_CONNECTIONS,
                     id="total"),
    ],
)
async def test_connection_over_the_cap_gets_421_then_a_freed_slot_is_reused(
    start_daemon: StartDaemon, caps: str, refusal: str
) -> None:
    daemon = await start_daemon("smtp", extra_toml=f"[smtpd.smtp]\n{caps}")
    clients: list[RawClient] = []
    try:
        for _ in range(2):
            c = await RawClient.connect(port(daemon))
            clients.append(c)
            assert await c.read_line() == GREETING

        third = await RawClient.connect(port(daemon))
        clients.append(third)
        assert await third.read_line() == refusal
        assert await third.closed_by_server()
        assert daemon.limits.total == 2  # the refused one was never counted

        await clients.pop(0).close()
        await eventually(lambda: daemon.limits.total == 1, what="the slot to be released")

        again = await RawClient.connect(port(daemon))
        clients.append(again)
        assert await again.read_line() == GREETING
        assert await again.command("NOOP") == replies.OK
    finally:
        for c in clients:
            await c.close()
    await eventually(lambda: daemon.limits.total == 0 and not daemon.limits.by_ip,
                     what="every slot to be released")
    assert daemon.limits.idle.is_set()


async def test_quit_and_abrupt_close_both_release_their_slot(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd.smtp]\ninstances_per_ip = 1\n")
    for how in ("quit", "drop", "quit"):
        c = await RawClient.connect(port(daemon))
        try:
            assert await c.read_line() == GREETING
            await c.send(b"EHLO client.example.org\r\n")
            await c.reply()
            await c.command("MAIL FROM:<a@example.net>")  # mid-transaction
            if how == "quit":
                assert await c.command("QUIT") == replies.BYE
        finally:
            await c.close()
        await eventually(lambda: daemon.limits.total == 0, what=f"release after {how}")


async def test_smtps_refuses_over_the_cap_inside_tls(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtps", extra_toml="[smtpd.smtps]\ninstances = 1\n")
    first = await RawClient.connect(port(daemon), tls=True)
    try:
        assert await first.read_line() == GREETING
        second = await RawClient.connect(port(daemon), tls=True)
        try:
            assert await second.read_line() == replies.TOO_MANY_CONNECTIONS
        finally:
            await second.close()
    finally:
        await first.close()
    await eventually(lambda: daemon.limits.total == 0, what="every slot to be released")


async def test_mail_gets_452_when_the_queue_file_system_is_short_of_space(
    start_daemon: StartDaemon,
) -> None:
    """Postfix's rule (1.5 x the size limit must be free), checked against the real file
    system of the queue directory: short of room, MAIL is refused before any body."""
    daemon = await start_daemon("smtp")
    state = daemon.handler.state
    settings = state.settings
    free = storage.free_bytes(settings.queue_dir)
    assert free
    c = await RawClient.connect(port(daemon))
    try:
        assert await c.read_line() == GREETING
        await c.command("EHLO client.example.org")
        state.settings = settings.replace(queue_min_free=free + 2**30)  # short of room
        assert await c.command("MAIL FROM:<a@example.org>") == replies.INSUFFICIENT_STORAGE
        assert await c.command("RCPT TO:<alice@example.com>") == replies.NEED_MAIL
        # space returned: served again
        state.settings = settings.replace(queue_min_free=free // 2)
        assert await c.command("MAIL FROM:<a@example.org>") == replies.OK_SENDER
    finally:
        await c.close()


def test_the_room_needed_is_the_minimum_or_one_and_a_half_declared_sizes(
    tmp_path: Path,
) -> None:
    free = storage.free_bytes(str(tmp_path))
    assert free
    assert storage.min_free(10_000_000) == 15_000_000
    assert storage.has_room(str(tmp_path), free // 2)
    assert not storage.has_room(str(tmp_path), free // 2, declared=free)  # 1.5 x declared
    assert storage.declared_size(["BODY=8BITMIME", "size=1234"]) == 1234
    assert storage.declared_size(["SIZE=abc"]) == 0
    assert storage.has_room("/nonexistent/queue", 10**18)  # unknown: Postfix decides
