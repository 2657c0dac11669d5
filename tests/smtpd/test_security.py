"""Hostile input gets a clear answer and never relays, smuggles or crashes anything."""

from __future__ import annotations

import base64

import pytest

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import FakePostfix, RawClient, in_thread, message, port, send

RELAY_TRICKS = [
    "user%remote.example@example.com",  # percent hack
    '"user@remote.example"@example.com',  # quoted local part holding an address
    "@example.com:user@remote.example",  # source route
    "remote.example!user@example.com",  # bang path
    "user@remote.example@example.com",  # two @
    "user@[192.0.2.1]",  # address literal
    "alice@example.com@remote.example",
]


@pytest.mark.parametrize("recipient", RELAY_TRICKS)
async def test_open_relay_address_tricks_are_never_accepted_from_the_internet(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, recipient: str
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        await c.send(b"EHLO relay-tester.example.net\r\n")
        await c.reply()
        assert (await c.command("MAIL FROM:<probe@example.net>")).startswith("250")
        answer = await c.command(f"RCPT TO:<{recipient}>")
        assert answer[:1] in ("5", "4") and not answer.startswith("250"), answer
    finally:
        await c.close()
    assert fake_postfix.messages == []


async def test_recipient_without_angle_brackets_is_never_relayed(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        await c.send(b"EHLO client.example.net\r\n")
        await c.reply()
        assert (await c.command("MAIL FROM:<probe@example.net>")).startswith("250")
        assert (await c.command("RCPT TO:user@remote.example")) == replies.RELAY_DENIED
        assert (await c.command("RCPT TO: user@remote.example")) == replies.RELAY_DENIED
    finally:
        await c.close()


async def test_more_recipients_than_the_limit_get_452(start_daemon: StartDaemon,
                                                      fake_postfix: FakePostfix) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\nmax_recipients = 100\n")
    rcpts = [f"alice-{i}@example.com" for i in range(1000)]
    outcome = await in_thread(send, port(daemon), "sender@example.net", rcpts)
    assert outcome.rcpts[:100] == [replies.OK_RECIPIENT] * 100
    assert set(outcome.rcpts[100:]) == {replies.TOO_MANY_RECIPIENTS}
    assert outcome.data is not None and outcome.data.startswith("250")
    assert len(fake_postfix.messages[0].rcpt_tos) == 100


async def test_sequence_errors_are_refused(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        assert (await c.command("MAIL FROM:<x@example.net>")).startswith("503")  # no EHLO
        await c.send(b"EHLO client.example.net\r\n")
        await c.reply()
        assert (await c.command("RCPT TO:<alice@example.com>")).startswith("503")
        assert (await c.command("DATA")).startswith("503")
        assert (await c.command("MAIL FROM:<x@example.net>")).startswith("250")
        assert (await c.command("MAIL FROM:<y@example.net>")).startswith("503")
    finally:
        await c.close()


async def test_overlong_command_line_is_refused_and_the_session_goes_on(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        await c.send(b"EHLO " + b"x" * 5000 + b"\r\n")
        assert (await c.reply())[0] == replies.LINE_TOO_LONG
        assert await c.command("NOOP") == replies.OK
    finally:
        await c.close()


async def test_unrecognized_command_flood_is_cut_off_after_four(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp")  # loopback is the internet here
    c = await RawClient.connect(port(daemon))
    await c.read_line()
    answers = [await c.command(f"XYZZY{i}") for i in range(4)]
    assert [a[:3] for a in answers] == ["500", "500", "500", "521"]
    assert await c.closed_by_server()


async def test_auth_plain_with_a_different_authzid_is_refused(
    start_daemon: StartDaemon,
) -> None:
    from tests.smtpd.support import PASSWORD

    daemon = await start_daemon("smtps")
    c = await RawClient.connect(port(daemon), tls=True)
    try:
        await c.read_line()
        await c.send(b"EHLO laptop.example.net\r\n")
        await c.reply()
        blob = base64.b64encode(f"bob\0alice\0{PASSWORD}".encode()).decode()
        assert await c.command(f"AUTH PLAIN {blob}") == replies.AUTHZID_REFUSED
        same = base64.b64encode(f"alice\0alice\0{PASSWORD}".encode()).decode()
        assert (await c.command(f"AUTH PLAIN {same}")).startswith("235")
    finally:
        await c.close()


async def test_three_failed_auths_close_the_connection(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtps")
    c = await RawClient.connect(port(daemon), tls=True)
    await c.read_line()
    await c.send(b"EHLO laptop.example.net\r\n")
    await c.reply()
    bad = base64.b64encode(b"\0alice\0wrong").decode()
    answers = [await c.command(f"AUTH PLAIN {bad}") for _ in range(3)]
    assert answers[0].startswith("535") and answers[1].startswith("535")
    assert answers[2].startswith("421"), answers
    assert await c.closed_by_server()


async def test_message_without_date_or_from_is_refused(start_daemon: StartDaemon,
                                                       fake_postfix: FakePostfix) -> None:
    daemon = await start_daemon("smtp")
    no_date = message().replace(b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n", b"")
    outcome = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"],
                              no_date)
    assert outcome.data is not None and outcome.data.startswith("550"), outcome
    assert fake_postfix.messages == []
