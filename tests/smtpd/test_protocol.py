"""SMTP protocol details (issue 18): long message lines, RCPT TO:<postmaster>, enhanced
status codes on every refusal, STARTTLS inside TLS, sub-addresses, verdict labels."""

from __future__ import annotations

import logging
import re
import smtplib
from pathlib import Path

import pytest

from appliance.smtpd import replies
from appliance.smtpd.plugins import loadcheck
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    PASSWORD,
    QUEUE_ID,
    FakePostfix,
    RawClient,
    auth_plain,
    client,
    in_thread,
    insecure_tls,
    line,
    message,
    port,
    send,
    transaction,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)
LONG_LINE = ("0123456789" * 500).encode()  # 5000 characters, five times RFC 5321's 998
ENHANCED = re.compile(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} ")


def _long_message() -> bytes:
    return message("long line", "before\r\n" + LONG_LINE.decode() + "\r\n.dot-stuffed")


# -- lines over 998 characters: accepted whole, never refused -------------------------


async def test_a_5000_character_line_from_the_internet_on_25_is_queued_whole(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"],
                          _long_message())

    assert out.data == QUEUED
    [got] = fake_postfix.messages
    assert b"\r\n" + LONG_LINE + b"\r\n" in got.content
    assert got.content.endswith(b"\r\n.dot-stuffed\r\n")  # dot-unstuffed once, as before


async def test_a_5000_character_line_from_our_user_on_587_is_queued_whole(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("submission")

    def dialogue() -> str | None:
        with client(port(daemon)) as s:
            s.starttls(context=insecure_tls())
            s.ehlo()
            s.docmd("AUTH", auth_plain("alice", PASSWORD))
            body = _long_message().replace(b"From: sender@example.net",
                                           b"From: alice@example.com")
            return transaction(s, "alice@example.com", ["friend@elsewhere.example"],
                               body).data

    assert await in_thread(dialogue) == QUEUED
    [got] = fake_postfix.messages
    assert b"\r\n" + LONG_LINE + b"\r\n" in got.content


async def test_message_size_still_limits_a_message_of_one_huge_line(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\nmax_message_size = 100000\n")
    huge = message("huge", "x" * 300_000)

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"],
                          huge)

    assert out.data == replies.MESSAGE_TOO_BIG
    assert fake_postfix.messages == []


async def test_an_overlong_command_line_is_refused_with_an_enhanced_code(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        assert await c.command("EHLO client.example.org") == "250 HELP"
        assert await c.command("MAIL FROM:<" + "a" * 2000 + "@example.net>") == \
            replies.LINE_TOO_LONG
        assert await c.command("NOOP") == replies.OK  # the session goes on
    finally:
        await c.close()


# -- 552 with 5.3.4 ------------------------------------------------------------------


async def test_size_over_the_limit_gets_552_5_3_4_at_mail_and_at_end_of_data(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\nmax_message_size = 1000\n")

    def at_mail() -> str:
        with client(port(daemon)) as s:
            s.ehlo()
            return line(s.mail("sender@example.net", ["SIZE=1001"]))

    assert await in_thread(at_mail) == replies.MESSAGE_TOO_BIG
    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"],
                          message(body="x" * 76 + "\r\n") * 20)
    assert out.data == replies.MESSAGE_TOO_BIG


# -- STARTTLS inside TLS --------------------------------------------------------------


async def test_starttls_inside_implicit_tls_on_465_is_refused_with_503(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtps")
    c = await RawClient.connect(port(daemon), tls=True)
    try:
        await c.read_line()
        await c.command("EHLO client.example.org")
        assert await c.command("STARTTLS") == replies.TLS_ALREADY_ACTIVE
        assert await c.command("NOOP") == replies.OK  # still our TLS session
    finally:
        await c.close()


async def test_a_second_starttls_on_587_is_refused_with_503(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("submission")

    def dialogue() -> tuple[str, str, str]:
        with client(port(daemon)) as s:
            first = line(s.starttls(context=insecure_tls()))
            s.ehlo()
            second = line(s.docmd("STARTTLS"))
            return first, second, line(s.noop())

    first, second, after = await in_thread(dialogue)
    assert first == replies.TLS_READY
    assert second == replies.TLS_ALREADY_ACTIVE
    assert after == replies.OK


# -- every refusal carries an enhanced code -------------------------------------------


async def test_every_refusal_of_a_misbehaving_client_has_an_enhanced_code(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    refusals: dict[str, str] = {}
    try:
        await c.read_line()
        for cmd in ("MAIL FROM:<a@example.net>", "HELO", "EHLO"):  # before HELO; no name
            refusals[cmd] = await c.command(cmd)
        await c.command("EHLO client.example.org")
        for cmd in ("RCPT TO:<alice@example.com>", "DATA", "MAIL FROM:<a@example.net> X=1",
                    "MAIL FROM:<a@example.net> BODY=BINARY", "MAIL", "RSET now", "QUIT now",
                    "EXPN staff", "AUTH PLAIN", "STARTTLS now"):
            refusals[cmd] = await c.command(cmd)
        await c.command("MAIL FROM:<a@example.net>")
        for cmd in ("MAIL FROM:<b@example.net>", "RCPT TO:<alice@example.com> NOTIFY=NEVER",
                    "RCPT", "DATA now"):
            refusals[cmd] = await c.command(cmd)
        await c.send(b"\r\n")
        refusals["empty line"] = (await c.reply())[-1]
    finally:
        await c.close()

    assert all(r[:1] in "45" for r in refusals.values()), refusals
    assert {cmd: r for cmd, r in refusals.items() if not ENHANCED.match(r)} == {}
    assert refusals["RCPT TO:<alice@example.com>"] == replies.NEED_MAIL
    assert refusals["DATA"] == replies.NEED_RCPT
    assert refusals["MAIL FROM:<b@example.net>"] == replies.NESTED_MAIL


# -- RCPT TO:<postmaster> (RFC 5321 4.5.1) ---------------------------------------------


@pytest.mark.parametrize("bare", ["postmaster", "Postmaster", "POSTMASTER"])
async def test_bare_postmaster_is_accepted_and_goes_to_the_primary_domain(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, bare: str
) -> None:
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net", [bare])

    assert out.rcpts == [replies.OK_RECIPIENT]
    assert out.data == QUEUED
    assert fake_postfix.messages[0].rcpt_tos == ["postmaster@example.com"]


async def test_no_other_bare_local_part_is_accepted(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice"])

    assert out.rcpts == [replies.BAD_ADDRESS.format(address="alice")]
    assert fake_postfix.messages == []


# -- sub-addresses: + and - by default --------------------------------------------------


@pytest.mark.parametrize("recipient", ["alice+tag@example.com", "alice-tag@example.com",
                                       "Alice+Lists-2026@example.com"])
async def test_sub_addresses_with_either_delimiter_reach_the_user(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, recipient: str
) -> None:
    daemon = await start_daemon("smtp")

    out = await in_thread(send, port(daemon), "sender@example.net", [recipient])

    assert out.rcpts == [replies.OK_RECIPIENT]
    assert fake_postfix.messages[0].rcpt_tos == [recipient]  # Postfix splits it again


async def test_one_configured_delimiter_refuses_the_other(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon(
        "smtp", extra_toml='[smtpd.check_goodrcptto]\nextension_separator = "-"\n')

    out = await in_thread(send, port(daemon), "sender@example.net",
                          ["alice+tag@example.com", "alice-tag@example.com"])

    assert out.rcpts == [replies.USER_UNKNOWN.format(address="alice+tag@example.com"),
                         replies.OK_RECIPIENT]


# -- verdict labels: 4xx deferred, 5xx rejected -----------------------------------------


def _terse(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "appliance.smtpd.transaction"]


async def test_a_451_is_logged_as_deferred(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "cpu.pressure").write_text("some avg10=99.00 avg60=0 avg300=0 total=1\n")
    monkeypatch.setattr(loadcheck.Plugin, "cgroup", tmp_path)
    daemon = await start_daemon("smtp")
    caplog.set_level(logging.INFO, logger="appliance.smtpd.transaction")

    def greeting() -> int:
        try:
            client(port(daemon)).close()
        except smtplib.SMTPConnectError as e:
            return e.smtp_code
        return 220

    assert await in_thread(greeting) == 451
    [logged] = _terse(caplog)
    assert "verdict=deferred" in logged and 'reply="451"' in logged, logged


async def test_a_553_from_the_queue_is_logged_as_rejected(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, caplog: pytest.LogCaptureFixture,
) -> None:
    fake_postfix.refuse["alice@example.com"] = "553 5.1.3 Address not accepted"
    daemon = await start_daemon("smtp")
    caplog.set_level(logging.INFO, logger="appliance.smtpd.transaction")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])

    assert out.data is not None and out.data.startswith("553 5.1.3 ")
    [logged] = _terse(caplog)
    assert "verdict=rejected" in logged and 'reply="553"' in logged, logged


@pytest.mark.parametrize(("recipient", "label"), [
    pytest.param("alice@example.com", "deferred", id="greylisted-4xx"),
    pytest.param("nobody@example.com", "rejected", id="unknown-5xx"),
])
async def test_a_transaction_whose_recipients_were_all_refused_is_labelled_by_their_codes(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture, recipient: str, label: str,
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd.greylisting]\nenabled = true\n")
    caplog.set_level(logging.INFO, logger="appliance.smtpd.transaction")

    out = await in_thread(send, port(daemon), "sender@example.net", [recipient])

    assert out.rcpts[0][:1] == ("4" if label == "deferred" else "5"), out.rcpts
    [logged] = _terse(caplog)
    assert f"verdict={label}" in logged, logged
