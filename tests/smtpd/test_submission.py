"""Ports 587 (STARTTLS then AUTH) and 465 (implicit TLS, AUTH): mail from our users."""

from __future__ import annotations

import asyncio
import base64
import smtplib
from typing import Any

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    CLIENT_HELO,
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
    tls_client,
    transaction,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)


async def test_submission_needs_starttls_then_auth_then_relays_with_esmtpsa(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("submission")

    def dialogue() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with client(port(daemon)) as s:
            s.ehlo()
            seen["features_plain"] = dict(s.esmtp_features)
            seen["mail_plain"] = s.mail("alice@example.com")
            seen["auth_plain"] = s.docmd("AUTH", auth_plain("alice", PASSWORD))
            s.starttls(context=insecure_tls())
            s.ehlo()
            seen["features_tls"] = dict(s.esmtp_features)
            seen["mail_no_auth"] = line(s.mail("alice@example.com"))
            seen["wrong"] = line(s.docmd("AUTH", auth_plain("alice", "wrong password")))
            seen["unknown"] = line(s.docmd("AUTH", auth_plain("mallory", PASSWORD)))
            seen["right"] = line(s.docmd("AUTH", auth_plain("alice@example.com", PASSWORD)))
            seen["out"] = transaction(s, "alice@example.com", ["friend@elsewhere.example"],
                                      message("from alice", from_="alice@example.com"))
        return seen

    seen = await in_thread(dialogue)

    assert "starttls" in seen["features_plain"]
    assert "auth" not in seen["features_plain"]
    assert seen["mail_plain"][0] == 530
    assert seen["auth_plain"][0] == 530  # no AUTH over plain text at all
    assert "starttls" not in seen["features_tls"]
    assert seen["features_tls"]["auth"].split() == ["LOGIN", "PLAIN"]  # no CRAM-MD5
    assert seen["mail_no_auth"] == replies.AUTH_REQUIRED
    assert seen["wrong"] == replies.AUTH_FAILED
    assert seen["unknown"] == replies.AUTH_FAILED
    assert seen["right"] == replies.AUTH_OK
    out = seen["out"]
    assert (out.mail, out.rcpts, out.data) == (replies.OK_SENDER, [replies.OK_RECIPIENT], QUEUED)
    [got] = fake_postfix.messages
    assert got.rcpt_tos == ["friend@elsewhere.example"]
    assert got.xforward == {"ADDR": "127.0.0.1", "NAME": "[UNAVAILABLE]", "PROTO": "ESMTPSA",
                            "HELO": CLIENT_HELO}


async def test_submission_auth_failure_is_delayed(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("submission")
    daemon.handler.state.passwords.failure_delay = 0.2
    loop_time = asyncio.get_running_loop().time

    def wrong() -> str:
        with client(port(daemon)) as s:
            s.starttls(context=insecure_tls())
            s.ehlo()
            return line(s.docmd("AUTH", auth_plain("alice", "nope")))

    started = loop_time()
    assert await in_thread(wrong) == replies.AUTH_FAILED
    assert loop_time() - started >= 0.2


async def test_smtps_is_tls_from_the_first_byte_and_auth_login_allows_relay(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtps")

    def dialogue() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with tls_client(port(daemon)) as s:
            s.ehlo()
            seen["features"] = dict(s.esmtp_features)
            seen["mail_no_auth"] = line(s.mail("alice@example.com"))
            seen["rcpt_no_auth"] = line(s.rcpt("friend@elsewhere.example"))
            s.user, s.password = "alice", PASSWORD
            # No initial response: the server asks for the user name, then the password.
            seen["login"] = line(s.auth("LOGIN", s.auth_login, initial_response_ok=False))
            seen["out"] = transaction(s, "alice@example.com", ["friend@elsewhere.example"],
                                      message("via 465", from_="alice@example.com"))
        return seen

    seen = await in_thread(dialogue)

    assert "starttls" not in seen["features"]
    assert seen["features"]["auth"].split() == ["LOGIN", "PLAIN"]
    assert seen["mail_no_auth"] == replies.AUTH_REQUIRED
    assert seen["rcpt_no_auth"] == replies.AUTH_REQUIRED
    assert seen["login"] == replies.AUTH_OK
    out = seen["out"]
    assert (out.rcpts, out.data) == ([replies.OK_RECIPIENT], QUEUED)
    [got] = fake_postfix.messages
    assert got.xforward["PROTO"] == "ESMTPSA"
    assert got.xforward["ADDR"] == "127.0.0.1"


async def test_smtps_without_auth_cannot_send_even_to_local_users(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtps", local_networks=["127.0.0.0/8"])

    def dialogue() -> tuple[str, str]:
        with tls_client(port(daemon)) as s:
            s.ehlo()
            mail = line(s.mail("someone@example.net"))
            try:
                data = line(s.data(message()))
            except smtplib.SMTPDataError as e:
                data = f"{e.smtp_code} {e.smtp_error.decode()}"
            return mail, data

    mail, data = await in_thread(dialogue)

    assert mail == replies.AUTH_REQUIRED
    assert data == replies.AUTH_REQUIRED
    assert fake_postfix.messages == []


async def test_smtps_auth_plain_with_initial_response_and_bad_base64(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtps")

    def dialogue() -> list[str]:
        with tls_client(port(daemon)) as s:
            s.ehlo()
            return [
                line(s.docmd("AUTH", "PLAIN not*base64")),
                line(s.docmd("AUTH", "PLAIN " + base64.b64encode(b"no separators").decode())),
                line(s.docmd("AUTH", auth_plain("bob", PASSWORD))),
                line(s.docmd("AUTH", auth_plain("bob", PASSWORD))),
            ]

    bad64, nosplit, ok, again = await in_thread(dialogue)

    assert bad64.startswith("501 ")
    assert nosplit.startswith("501 ")
    assert ok == replies.AUTH_OK
    assert again.startswith("503 ")  # already authenticated


async def test_port_25_allows_auth_only_after_starttls_and_then_relays(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")  # loopback is internet here

    def dialogue() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with client(port(daemon)) as s:
            s.ehlo()
            seen["auth_plain"] = s.docmd("AUTH", auth_plain("alice", PASSWORD))
            seen["relay_plain"] = transaction(s, "alice@example.com", ["x@elsewhere.example"],
                                              message())
            s.rset()
            s.starttls(context=insecure_tls())
            s.ehlo()
            seen["auth"] = line(s.docmd("AUTH", auth_plain("alice", PASSWORD)))
            seen["out"] = transaction(s, "alice@example.com", ["x@elsewhere.example"],
                                      message(from_="alice@example.com"))
        return seen

    seen = await in_thread(dialogue)

    assert seen["auth_plain"][0] == 538  # encryption required
    assert seen["relay_plain"].rcpts == [replies.RELAY_DENIED]
    assert seen["auth"] == replies.AUTH_OK
    assert seen["out"].data == QUEUED
    [got] = fake_postfix.messages
    assert got.xforward["PROTO"] == "ESMTPSA"


async def test_commands_injected_before_the_tls_handshake_are_discarded(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    """CVE-2011-0411 style STARTTLS injection: plaintext after STARTTLS is dropped."""
    daemon = await start_daemon("submission")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        await c.send(b"EHLO client.example.org\r\n")
        await c.reply()
        await c.send(b"STARTTLS\r\nEHLO injected.example\r\n")
        assert (await c.reply())[-1].startswith("220 ")
        await asyncio.wait_for(c.writer.start_tls(insecure_tls()), 10)

        # The first reply over TLS answers our NOOP, not the injected EHLO.
        assert await c.command("NOOP") == replies.OK
        # and the session starts from scratch: a new EHLO is needed (RFC 3207)
        assert (await c.command("MAIL FROM:<alice@example.com>")).startswith("503 ")
        await c.command("QUIT")
    finally:
        await c.close()
