"""Port 25: mail from the internet for our users, relaying, sizes."""

from __future__ import annotations

import smtplib

import pytest

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    CLIENT_HELO,
    HEADERS,
    HOSTNAME,
    LOOPBACK,
    QUEUE_ID,
    FakePostfix,
    RawClient,
    in_thread,
    line,
    message,
    port,
    send,
    transaction,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)


async def test_internet_mail_to_local_user_is_handed_off_with_xforward(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")  # local_networks 10.99.0.0/16: loopback is internet
    body = message("for alice")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"], body)

    assert out.mail == replies.OK_SENDER
    assert out.rcpts == [replies.OK_RECIPIENT]
    assert out.data == QUEUED
    [got] = fake_postfix.messages
    assert got.mail_from == "sender@example.net"
    assert got.rcpt_tos == ["alice@example.com"]
    # Internet mail gains trace headers (Authentication-Results...) above the original.
    assert got.content.endswith(body)
    assert got.xforward == {
        "ADDR": "127.0.0.1", "NAME": "[UNAVAILABLE]", "PROTO": "ESMTP", "HELO": CLIENT_HELO,
    }
    # XFORWARD comes before MAIL, as Postfix requires
    assert fake_postfix.commands[:2] == [
        f"XFORWARD ADDR=127.0.0.1 NAME=[UNAVAILABLE] PROTO=ESMTP HELO={CLIENT_HELO}",
        "MAIL sender@example.net",
    ]


async def test_greeting_and_ehlo_extensions(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        assert await c.read_line() == replies.GREETING.format(hostname=HOSTNAME)
        await c.send(b"EHLO client.example.org\r\n")
        ehlo = await c.reply()
        assert ehlo[0] == f"250-{HOSTNAME}"
        assert "250-PIPELINING" in ehlo and "250-ENHANCEDSTATUSCODES" in ehlo
        assert "250-STARTTLS" in ehlo
        assert not any("AUTH" in x for x in ehlo)  # no AUTH in plain text
        assert await c.command("QUIT") == replies.BYE
    finally:
        await c.close()


async def test_relay_without_auth_is_refused_at_rcpt_and_unknown_user_gets_511(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "spammer@example.net",
                          ["victim@elsewhere.example", "nobody@example.com"])

    assert out.rcpts == [
        replies.RELAY_DENIED,
        replies.USER_UNKNOWN.format(address="nobody@example.com"),
    ]
    assert out.data is None
    assert fake_postfix.messages == []
    assert fake_postfix.connections == 0  # nothing even reached the hand-off


async def test_refused_recipients_do_not_stop_the_accepted_one(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net",
                          ["victim@elsewhere.example", "Alice@Example.COM"])

    assert out.rcpts == [replies.RELAY_DENIED, replies.OK_RECIPIENT]
    assert out.data == QUEUED
    [got] = fake_postfix.messages
    assert got.rcpt_tos == ["Alice@Example.COM"]


async def test_local_network_client_may_relay_to_a_remote_domain(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp", local_networks=LOOPBACK)

    out = await in_thread(send, port(daemon), "alice@example.com", ["friend@elsewhere.example"])

    assert out.rcpts == [replies.OK_RECIPIENT]
    assert out.data == QUEUED
    [got] = fake_postfix.messages
    assert got.rcpt_tos == ["friend@elsewhere.example"]
    assert got.xforward["ADDR"] == "127.0.0.1"
    assert got.xforward["PROTO"] == "ESMTP"  # no TLS, no AUTH


async def test_declared_size_over_the_limit_is_refused_at_mail(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\nmax_message_size = 1000\n")

    def dialogue() -> tuple[str, str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port(daemon), timeout=5) as s:
            s.ehlo()
            size = s.esmtp_features.get("size", "")
            over = line(s.mail("sender@example.net", ["SIZE=1001"]))
            return size, over, s.mail("sender@example.net", ["SIZE=1000"])

    size, over, at_limit = await in_thread(dialogue)

    assert size == "1000"
    assert over.startswith("552 ")
    assert at_limit[0] == 250


async def test_message_bigger_than_the_limit_is_refused_at_end_of_data(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\nmax_message_size = 1000\n")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"],
                          message(body="x" * 76 + "\r\n") * 20)

    assert out.data is not None and out.data.startswith("552 ")
    assert fake_postfix.messages == []


async def test_dot_stuffing_and_8bit_body_survive_the_handoff(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    body = (HEADERS.decode() + "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
            "8-bit: bl\u00e5b\u00e6r\r\n").encode("utf-8")

    out = await in_thread(send, port(daemon), "sender@example.net", ["bob@example.com"], body,
                          ("BODY=8BITMIME",))

    assert out.data == QUEUED
    [got] = fake_postfix.messages
    # Internet mail gains trace headers (Authentication-Results...) above the original.
    assert got.content.endswith(body)
    assert "BODY=8BITMIME" in got.mail_options


async def test_null_sender_bounce_is_accepted_and_handed_off(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    """RFC 5321 4.5.5: a server must accept the null reverse-path (bounces, DSNs)."""
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "", ["alice@example.com"])

    assert out.mail == replies.OK_SENDER
    assert out.rcpts == [replies.OK_RECIPIENT]
    assert out.data == QUEUED, (
        "a bounce (MAIL FROM:<>) must be queued; the daemon answered "
        f"{out.data!r} (see the bug report: handler passes '<>' to aiosmtplib)"
    )
    [got] = fake_postfix.messages
    assert got.mail_from in ("", "<>")


async def test_second_message_on_one_session_reuses_the_handoff_connection(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")

    def two() -> list[str | None]:
        with smtplib.SMTP("127.0.0.1", port(daemon), local_hostname=CLIENT_HELO,
                          timeout=5) as s:
            s.ehlo()
            a = transaction(s, "one@example.net", ["alice@example.com"], message("1"))
            b = transaction(s, "two@example.net", ["bob@example.com"], message("2"))
            return [a.data, b.data]

    assert await in_thread(two) == [QUEUED, QUEUED]
    assert [m.mail_from for m in fake_postfix.messages] == ["one@example.net",
                                                            "two@example.net"]
    # XFORWARD is sent for every message, not only on a new connection
    assert all(m.xforward.get("ADDR") == "127.0.0.1" for m in fake_postfix.messages)
    assert fake_postfix.connections == 1


async def test_rcpt_nobody_decided_about_is_a_temporary_failure(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.smtpd import peers

    monkeypatch.setattr(peers, "TABLE", (("relay", peers.ALL),))  # no rcpt_ok
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])

    assert out.rcpts == [replies.NO_DECISION]
    assert out.data is None
    assert fake_postfix.messages == []
