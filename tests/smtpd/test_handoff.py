"""The synchronous hand-off: the client hears 250 only when Postfix said 250."""

from __future__ import annotations

import asyncio

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    QUEUE_ID,
    FakePostfix,
    eventually,
    free_port,
    in_thread,
    port,
    send,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)
BOB_UNKNOWN = "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"
ALICE_UNKNOWN = "550 5.1.1 <alice@example.com>: Recipient address rejected: User unknown"


async def test_postfix_down_gives_451_at_end_of_data(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtp", handoff_port=free_port())  # nothing listens there

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])

    assert out.rcpts == [replies.OK_RECIPIENT]  # RCPT is decided by our plugins alone
    assert out.data == replies.HANDOFF_UNAVAILABLE


async def test_postfix_refusing_one_of_two_recipients_queues_nothing(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    fake_postfix.refuse["bob@example.com"] = BOB_UNKNOWN
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net",
                          ["alice@example.com", "bob@example.com"])

    assert out.rcpts == [replies.OK_RECIPIENT, replies.OK_RECIPIENT]
    assert out.data == replies.HANDOFF_REFUSED_SOME
    assert fake_postfix.messages == []
    assert "DATA" not in fake_postfix.commands
    assert fake_postfix.commands[-1] == "RSET"  # the hand-off connection is left clean


async def test_postfix_refusing_every_recipient_passes_its_5xx_through(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    fake_postfix.refuse["alice@example.com"] = ALICE_UNKNOWN
    fake_postfix.refuse["bob@example.com"] = BOB_UNKNOWN
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net",
                          ["alice@example.com", "bob@example.com"])

    assert out.data == ALICE_UNKNOWN
    assert fake_postfix.messages == []


async def test_postfix_refusing_the_only_recipient_temporarily_is_a_4xx(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    fake_postfix.refuse["alice@example.com"] = "450 4.2.0 <alice@example.com>: try later"
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])

    assert out.data is not None and out.data.startswith("45")
    assert fake_postfix.messages == []


async def test_after_a_refusal_the_pooled_connection_still_delivers(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    fake_postfix.refuse["bob@example.com"] = BOB_UNKNOWN
    daemon = await start_daemon("smtp")
    refused = await in_thread(send, port(daemon), "a@example.net",
                              ["alice@example.com", "bob@example.com"])
    assert refused.data == replies.HANDOFF_REFUSED_SOME

    out = await in_thread(send, port(daemon), "b@example.net", ["alice@example.com"])

    assert out.data == QUEUED
    [got] = fake_postfix.messages
    assert (got.mail_from, got.rcpt_tos) == ("b@example.net", ["alice@example.com"])
    assert fake_postfix.connections == 1


async def test_stale_pooled_connection_is_retried_on_a_fresh_one(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    first = await in_thread(send, port(daemon), "a@example.net", ["alice@example.com"])
    assert first.data == QUEUED
    fake_postfix.drop_connections()  # Postfix's idle timeout hung up on the pooled one
    await eventually(lambda: not fake_postfix.protocols, what="the fake to hang up")

    out = await in_thread(send, port(daemon), "b@example.net", ["bob@example.com"])

    assert out.data == QUEUED
    assert [m.mail_from for m in fake_postfix.messages] == ["a@example.net", "b@example.net"]
    assert fake_postfix.messages[1].xforward["ADDR"] == "127.0.0.1"
    assert fake_postfix.connections == 2


async def test_postfix_back_after_being_down_delivers_again(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    real_port = daemon.handoff.port
    daemon.handoff.port = free_port()
    down = await in_thread(send, port(daemon), "a@example.net", ["alice@example.com"])
    assert down.data == replies.HANDOFF_UNAVAILABLE

    daemon.handoff.port = real_port
    up = await in_thread(send, port(daemon), "a@example.net", ["alice@example.com"])

    assert up.data == QUEUED
    assert len(fake_postfix.messages) == 1


async def test_simultaneous_sessions_each_get_their_message_queued(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")

    outs = await asyncio.gather(*(
        in_thread(send, port(daemon), f"s{i}@example.net", ["alice@example.com"])
        for i in range(4)
    ))

    assert [o.data for o in outs] == [QUEUED] * 4
    assert sorted(m.mail_from for m in fake_postfix.messages) == [
        f"s{i}@example.net" for i in range(4)
    ]
