"""AUTH PLAIN and LOGIN on a real daemon (465): the exchanges' edge cases and failures."""

from __future__ import annotations

import base64
import logging

import pytest

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import CLIENT_HELO, PASSWORD, RawClient, port


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


async def session(daemon: object) -> RawClient:
    c = await RawClient.connect(port(daemon), tls=True)  # type: ignore[arg-type]
    assert (await c.reply())[0].startswith("220 ")
    assert (await c.command(f"EHLO {CLIENT_HELO}")).startswith("250 ")
    return c


async def test_plain_as_someone_else_is_refused_and_the_client_stays_anonymous(
    start_daemon: StartDaemon
) -> None:
    daemon = await start_daemon("smtps")
    c = await session(daemon)
    try:
        refused = await c.command("AUTH PLAIN " + b64("bob\0alice\0" + PASSWORD))
        mail = await c.command("MAIL FROM:<alice@example.com>")
        same_name = await c.command("AUTH PLAIN " + b64("ALICE\0alice\0" + PASSWORD))
    finally:
        await c.close()

    assert refused == replies.AUTHZID_REFUSED
    assert mail == replies.AUTH_REQUIRED
    assert same_name == replies.AUTH_OK


async def test_plain_asked_for_after_an_empty_challenge(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtps")
    c = await session(daemon)
    try:
        challenge = await c.command("AUTH PLAIN")
        answer = await c.command(b64("\0alice\0" + PASSWORD))
    finally:
        await c.close()

    assert challenge == "334 "
    assert answer == replies.AUTH_OK


async def test_login_with_the_user_name_inline_asks_only_for_the_password(
    start_daemon: StartDaemon
) -> None:
    daemon = await start_daemon("smtps")
    c = await session(daemon)
    try:
        challenge = await c.command(f"AUTH LOGIN {b64('alice')}")
        answer = await c.command(b64(PASSWORD))
    finally:
        await c.close()

    assert challenge == "334 " + b64("Password\0")
    assert answer == replies.AUTH_OK


async def test_login_aborted_or_undecodable_leaves_the_client_anonymous(
    start_daemon: StartDaemon
) -> None:
    daemon = await start_daemon("smtps")
    c = await session(daemon)
    try:
        assert (await c.command("AUTH LOGIN")) == "334 " + b64("User Name\0")
        aborted = await c.command("*")
        bad_inline = await c.command("AUTH LOGIN not*base64")
        assert (await c.command(f"AUTH LOGIN {b64('alice')}")).startswith("334 ")
        bad_password = await c.command("not*base64")
        mail = await c.command("MAIL FROM:<alice@example.com>")
    finally:
        await c.close()

    assert aborted.startswith("501 ")
    assert bad_inline == replies.AUTH_BAD_BASE64
    assert bad_password.startswith("501 ")
    assert mail == replies.AUTH_REQUIRED


async def test_a_wrong_password_is_logged_with_the_login_and_refused(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="appliance.smtpd.handler")
    daemon = await start_daemon("smtps")
    c = await session(daemon)
    try:
        wrong = await c.command("AUTH PLAIN " + b64(b"\0alice\0nope"))
        undecodable = await c.command("AUTH PLAIN " + b64(b"\0\xff\xfe\0nope"))
    finally:
        await c.close()

    assert wrong == replies.AUTH_FAILED
    assert undecodable == replies.AUTH_FAILED
    failures = [r.getMessage() for r in caplog.records if r.name == "appliance.smtpd.handler"]
    assert failures[0].endswith("AUTH failed for 'alice'")
    assert len(failures) == 2
