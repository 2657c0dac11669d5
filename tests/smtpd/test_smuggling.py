"""SMTP smuggling: bare CR or LF inside DATA is refused, never handed to Postfix."""

from __future__ import annotations

import pytest

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import HEADERS, FakePostfix, RawClient, port

SMUGGLED = [
    pytest.param(b"line1\n.\r\nMAIL FROM:<x@y>\r\n", id="bare-LF-dot"),
    pytest.param(b"line1\r\n.\nMAIL FROM:<x@y>\r\n", id="dot-bare-LF"),
    pytest.param(b"line1\r.\r\nMAIL FROM:<x@y>\r\n", id="bare-CR-dot"),
    pytest.param(b"just a bare\nLF in a line\r\n", id="bare-LF"),
]


@pytest.mark.parametrize("body", SMUGGLED)
async def test_bare_cr_or_lf_in_data_is_refused_and_nothing_is_handed_off(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, body: bytes
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        assert (await c.read_line()).startswith("220 ")
        await c.send(b"EHLO client.example.org\r\n")
        await c.reply()
        assert await c.command("MAIL FROM:<sender@example.net>") == replies.OK_SENDER
        assert await c.command("RCPT TO:<alice@example.com>") == replies.OK_RECIPIENT
        assert (await c.command("DATA")).startswith("354 ")

        await c.send(b"Subject: smuggle\r\n\r\n" + body)
        await c.send(b"\r\n.\r\n")

        assert await c.reply() == [replies.BARE_CR_LF]
        # The smuggled "MAIL FROM" was message data, not a command: the next reply
        # belongs to our next command.
        assert await c.command("NOOP") == replies.OK
        assert await c.command("QUIT") == replies.BYE
    finally:
        await c.close()
    assert fake_postfix.messages == []
    assert fake_postfix.connections == 0


async def test_clean_crlf_message_sent_raw_is_queued(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    """The control case for the above: the same dialogue without bare CR/LF goes through."""
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        await c.send(b"EHLO client.example.org\r\n")
        await c.reply()
        await c.command("MAIL FROM:<sender@example.net>")
        await c.command("RCPT TO:<alice@example.com>")
        await c.command("DATA")
        await c.send(HEADERS + b"Subject: fine\r\n\r\nline1\r\n..\r\nline3\r\n.\r\n")
        assert await c.reply() == [replies.QUEUED.format(queue_id="ABC123")]
        await c.command("QUIT")
    finally:
        await c.close()
    [got] = fake_postfix.messages
    assert got.content.endswith(b"Subject: fine\r\n\r\nline1\r\n.\r\nline3\r\n")
