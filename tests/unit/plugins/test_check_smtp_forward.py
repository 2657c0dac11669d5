"""check_smtp_forward: a delegated domain's server decides about its recipients.

The other server is a real aiosmtpd SMTP server in this test's event loop.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from appliance.config.schema import parse_server
from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict


@dataclass
class Inner:
    """The delegated domain's server: knows `users`, answers some recipients specially."""

    users: set[str] = field(default_factory=lambda: {"carol@delegated.example"})
    special: dict[str, str] = field(default_factory=lambda: {
        "busy@delegated.example": "450 4.2.1 Mailbox busy",
        "plain@delegated.example": "550 No such user here",
    })
    refuse_senders: set[str] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)
    connections: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.commands.append(f"EHLO {hostname}")
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        self.commands.append(f"MAIL <{address}>")
        if address in self.refuse_senders:
            return "550 5.7.1 Sender not welcome"
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        self.commands.append(f"RCPT <{address}>")
        if address in self.special:
            return self.special[address]
        if address not in self.users:
            return f"550 5.1.1 <{address}>: Recipient address rejected: unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_RSET(self, server, session, envelope):
        self.commands.append("RSET")
        return "250 2.0.0 Ok"


@pytest.fixture
async def inner():
    handler = Inner()

    def factory() -> SMTP:
        handler.connections += 1
        return SMTP(handler, hostname="inner.test")

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    handler.port = server.sockets[0].getsockname()[1]
    yield handler
    server.close()
    await server.wait_closed()


@pytest.fixture
def forward(make_plugin, base_settings):
    def make(server: str):
        settings = dict(base_settings, delegated_domains={"delegated.example": server})
        return make_plugin("check_smtp_forward", settings=settings)
    return make


async def test_known_recipient_is_left_to_rcpt_ok(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    t = txn(sender="someone@sender.example")
    assert await plugin.hook_rcpt(conn(), t, "carol@delegated.example") is None
    assert inner.commands == ["EHLO mail.example.com", "MAIL <someone@sender.example>",
                              "RCPT <carol@delegated.example>", "RSET"]


async def test_unknown_recipient_gets_the_servers_refusal(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    result = await plugin.hook_rcpt(conn(), txn(), "dave@delegated.example")
    assert result.verdict is Verdict.DENY
    assert result.reply == ("550 5.1.1 <dave@delegated.example>: Recipient address "
                            "rejected: unknown")


async def test_refusal_without_enhanced_code_gets_one(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    result = await plugin.hook_rcpt(conn(), txn(), "plain@delegated.example")
    assert result.verdict is Verdict.DENY
    assert result.reply == "550 5.1.1 No such user here"


async def test_temporary_answer_defers(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    result = await plugin.hook_rcpt(conn(), txn(), "busy@delegated.example")
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply == ("451 4.4.1 Cannot verify <busy@delegated.example> with "
                            "127.0.0.1 now, try again later")


async def test_null_sender_is_asked_as_null_sender(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    assert await plugin.hook_rcpt(conn(), txn(sender=""), "carol@delegated.example") is None
    assert "MAIL <<>>" in inner.commands  # aiosmtpd passes the null sender on as "<>"


async def test_refused_sender_is_refused_and_not_remembered(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    inner.refuse_senders.add("bad@sender.example")
    result = await plugin.hook_rcpt(conn(), txn(sender="bad@sender.example"),
                                    "carol@delegated.example")
    assert result.verdict is Verdict.DENY
    assert result.reply == "550 5.7.1 Sender not welcome"
    assert await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example") is None


async def test_answers_are_remembered(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    for _ in range(3):
        assert await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example") is None
        refused = await plugin.hook_rcpt(conn(), txn(), "Dave@delegated.example")
        assert refused.verdict is Verdict.DENY
    assert inner.connections == 2
    plugin.cache_seconds = -1  # everything remembered from now on is already stale
    plugin.cache.clear()
    await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example")
    await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example")
    assert inner.connections == 4


async def test_temporary_answers_are_not_remembered(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    await plugin.hook_rcpt(conn(), txn(), "busy@delegated.example")
    del inner.special["busy@delegated.example"]
    inner.users.add("busy@delegated.example")
    assert await plugin.hook_rcpt(conn(), txn(), "busy@delegated.example") is None


async def test_other_domains_are_not_asked(forward, inner, conn, txn):
    plugin = forward(f"127.0.0.1:{inner.port}")
    assert await plugin.hook_rcpt(conn(), txn(), "alice@example.com") is None
    assert await plugin.hook_rcpt(conn(), txn(), "x@other.example") is None
    assert inner.connections == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_server_down_defers(forward, conn, txn):
    plugin = forward(f"[127.0.0.1]:{free_port()}")
    result = await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example")
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply.startswith("451 4.4.1 Cannot verify <carol@delegated.example> with "
                                   "127.0.0.1 ")


async def test_silent_server_defers_after_the_timeout(forward, conn, txn):
    async def silent(reader, writer):
        await reader.read()  # never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        plugin = forward(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        plugin.timeout = 0.2
        result = await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example")
        assert result.verdict is Verdict.DENYSOFT
        assert result.reply.startswith("451 4.4.1 ")
    finally:
        server.close()


@pytest.mark.parametrize(("value", "expected"), [
    ("mx.delegated.example", ("mx.delegated.example", 25)),
    ("mx.delegated.example:2525", ("mx.delegated.example", 2525)),
    ("192.0.2.25", ("192.0.2.25", 25)),
    ("[192.0.2.25]", ("192.0.2.25", 25)),
    ("[2001:db8::25]:587", ("2001:db8::25", 587)),
    ("2001:db8::25", ("2001:db8::25", 25)),
])
def test_server_forms(value, expected):
    assert parse_server(value) == expected


@pytest.mark.parametrize("value", ["", "host:port", "host:0", "[192.0.2.25]x", "host:99999"])
def test_bad_server_is_refused(forward, value):
    with pytest.raises(PluginError):
        forward(value)


async def test_a_sender_refused_at_rcpt_is_not_served_to_the_next_sender(forward, inner, conn,
                                                                        txn):
    # Postfix (smtpd_delay_reject) reports a sender or client refusal at RCPT.
    plugin = forward(f"127.0.0.1:{inner.port}")
    inner.special["carol@delegated.example"] = "554 5.7.1 Client host rejected"
    refused = await plugin.hook_rcpt(conn(), txn(sender="spam@sender.example"),
                                     "carol@delegated.example")
    assert refused.verdict is Verdict.DENY
    del inner.special["carol@delegated.example"]
    assert await plugin.hook_rcpt(conn(), txn(), "carol@delegated.example") is None
    assert inner.connections == 2
