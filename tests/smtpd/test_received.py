"""Our Received line (RFC 5321 §4.4) on every accepted message, through the real daemon."""

from __future__ import annotations

import asyncio
import email.utils
import re
import smtplib
from pathlib import Path
from typing import Any

import dkim
import pytest

import appliance.smtpd.pipeline
from appliance import dkim_keys
from appliance.smtpd import received, replies
from appliance.smtpd.hooks import Connection, Transaction
from tests.smtpd.conftest import LoopbackDNS, StartDaemon
from tests.smtpd.support import (
    CLIENT_HELO,
    HOSTNAME,
    PASSWORD,
    FakePostfix,
    RawClient,
    auth_plain,
    client,
    eventually,
    in_thread,
    insecure_tls,
    message,
    port,
    send,
    transaction,
)

PTR_OF_LOOPBACK = "1.0.0.127.in-addr.arpa"
ALICE_MESSAGE = message(from_="alice@example.com")


# What plugins of the same hop may put above our line (RFC 7208 §9.1, RFC 8601 §5).
ABOVE = ("authentication-results", "received-spf", "dkim-signature")


def trace(content: bytes) -> str:
    """Our Received field, unfolded; only this hop's other trace fields are above it."""
    head = content.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = re.findall(r"[^\r\n]+(?:\r\n[ \t][^\r\n]*)*", head)
    for field in fields:
        if field.startswith("Received:"):
            assert all(len(line) < received.MAX_LINE for line in field.split("\r\n"))
            return " ".join(part.strip() for part in field.split("\r\n"))
        assert field.split(":", 1)[0].lower() in ABOVE, field
    raise AssertionError("no Received field")


def when(field: str) -> float:
    parsed = email.utils.parsedate_to_datetime(field.rpartition(";")[2].strip())
    return parsed.timestamp()


async def test_internet_mail_gets_our_received_line_first(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    body = message("traced")

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"], body)

    assert out.data is not None and out.data.startswith("250")
    [got] = fake_postfix.messages
    field = trace(got.content)
    assert re.fullmatch(
        rf"Received: from {CLIENT_HELO} \(unknown \[127\.0\.0\.1\]\) by {HOSTNAME} "
        r"with ESMTP id [0-9A-F]{16} for <alice@example\.com>; .+", field), field
    assert when(field) > 0  # an RFC 5322 date
    assert got.content.endswith(body)


async def test_the_client_name_is_its_forward_confirmed_reverse_dns(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    LoopbackDNS.records = {(PTR_OF_LOOPBACK, "PTR"): ["relay.example.net."],
                           ("relay.example.net", "A"): ["127.0.0.1"],
                           # a PTR name whose address is not the client's is not believed
                           ("liar.example.net", "A"): ["192.0.2.1"]}
    daemon = await start_daemon("smtp")
    await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])
    LoopbackDNS.records[(PTR_OF_LOOPBACK, "PTR")] = ["liar.example.net."]
    daemon2 = await start_daemon("smtp")  # a new connection: a new lookup
    await in_thread(send, port(daemon2), "sender@example.net", ["alice@example.com"])

    first, second = (trace(m.content) for m in fake_postfix.messages)
    assert f"from {CLIENT_HELO} (relay.example.net [127.0.0.1])" in first
    assert f"from {CLIENT_HELO} (unknown [127.0.0.1])" in second
    # Postfix is told the same name (XFORWARD NAME), so its own trace line agrees
    assert [m.xforward["NAME"] for m in fake_postfix.messages] == [
        "relay.example.net", "[UNAVAILABLE]"]


async def test_submission_records_tls_cipher_and_login_with_esmtpsa(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("submission")

    def dialogue() -> tuple[str, tuple[str, str, int] | None]:
        with client(port(daemon)) as s:
            s.starttls(context=insecure_tls())
            s.ehlo()
            s.docmd("AUTH", auth_plain("alice", PASSWORD))
            transaction(s, "alice@example.com", ["friend@elsewhere.example",
                                                 "other@elsewhere.example"], ALICE_MESSAGE)
            return s.sock.version() or "", s.sock.cipher()  # type: ignore[union-attr]

    version, cipher = await in_thread(dialogue)

    assert cipher is not None
    [got] = fake_postfix.messages
    field = trace(got.content)
    assert (f"(using {version} with cipher {cipher[0]} ({cipher[2]}/{cipher[2]} bits)) "
            "(Authenticated sender: alice) ") in field, field
    assert re.search(rf" by {HOSTNAME} with ESMTPSA id [0-9A-F]{{16}}; ", field), field
    assert " for <" not in field  # two recipients: neither is named to the other


async def test_implicit_tls_on_465_is_esmtpsa_and_helo_clients_get_smtp(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    smtps = await start_daemon("smtps")
    smtp = await start_daemon("smtp")

    def over_465() -> None:
        with smtplib.SMTP_SSL("127.0.0.1", port(smtps), local_hostname=CLIENT_HELO,
                              timeout=5, context=insecure_tls()) as s:
            s.ehlo()
            s.docmd("AUTH", auth_plain("alice", PASSWORD))
            transaction(s, "alice@example.com", ["friend@elsewhere.example"], ALICE_MESSAGE)

    def helo_only() -> None:
        with client(port(smtp)) as s:
            s.helo()
            transaction(s, "sender@example.net", ["alice@example.com"], message())

    await in_thread(over_465)
    await in_thread(helo_only)

    tls_field, helo_field = (trace(m.content) for m in fake_postfix.messages)
    assert "(using TLSv1." in tls_field and " with ESMTPSA id " in tls_field
    assert "for <friend@elsewhere.example>;" in tls_field
    assert " with SMTP id " in helo_field and "(using" not in helo_field


async def test_a_hostile_helo_cannot_break_out_of_the_from_clause(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    c = await RawClient.connect(port(daemon))
    try:
        await c.reply()
        helo = "evil(x);by\x7fnobody[10.0.0.1]" + "a" * 400
        assert (await c.command(f"EHLO {helo}")).startswith("250")
        assert (await c.command("MAIL FROM:<sender@example.net>")) == replies.OK_SENDER
        assert (await c.command("RCPT TO:<alice@example.com>")) == replies.OK_RECIPIENT
        assert (await c.command("DATA")).startswith("354")
        assert (await c.command(message().decode() + ".")).startswith("250")
    finally:
        await c.close()

    [got] = fake_postfix.messages
    field = trace(got.content)
    sent_helo = field.split(" ")[2]
    assert sent_helo.startswith("evil?x??by?nobody?10.0.0.1?aaa")
    assert len(sent_helo) == received.MAX_HELO
    assert " (unknown [127.0.0.1]) by " in field


async def test_dkim_signature_of_our_users_mail_still_verifies_with_trace_lines(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("submission", extra_toml="[smtpd.dkim_sign]\nenabled = true\n")
    keys = Path(daemon.settings.dkim_keys)
    dkim_keys.ensure_default_key(keys)
    name, txt = dkim_keys.dkim_txt(keys, "example.com") or ("", "")

    def send_signed() -> None:
        with client(port(daemon)) as s:
            s.starttls(context=insecure_tls())
            s.ehlo()
            s.docmd("AUTH", auth_plain("alice", PASSWORD))
            body = (b"From: Alice <alice@example.com>\r\nTo: friend@elsewhere.example\r\n"
                    b"Subject: signed\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nHi.\r\n")
            transaction(s, "alice@example.com", ["friend@elsewhere.example"], body)

    await in_thread(send_signed)

    [got] = fake_postfix.messages
    assert got.content.startswith(b"DKIM-Signature: ")
    assert b"\r\nReceived: from " + CLIENT_HELO.encode() in got.content
    # Postfix and the next hops add their own Received lines above: still valid
    forwarded = b"Received: from mail.example.com by mx.elsewhere.example\r\n" + got.content

    def txt_record(qname: bytes, timeout: int = 5) -> bytes:
        assert qname.decode().rstrip(".") == f"{name}.example.com"
        return txt.encode()

    assert dkim.verify(forwarded, dnsfunc=txt_record)


def test_header_is_folded_sanitized_and_skips_unsafe_recipients() -> None:
    conn = Connection(daemon="smtp", remote_ip="198.51.100.7", remote_port=1, local_port=25,
                      helo="", esmtp=True)
    txn = Transaction(sender="a@example.net", recipients=['"a b\x01"@example.com'])

    field = received.header(conn, txn, HOSTNAME, date="Sun, 06 Dec 2026 21:00:00 +0000")

    assert field == (f"Received: from unknown (unknown [198.51.100.7])\r\n"
                     f"\tby {HOSTNAME} with ESMTP id {txn.received_id}; "
                     "Sun, 06 Dec 2026 21:00:00 +0000\r\n").encode()
    other = Transaction(recipients=["alice@example.com"])
    received.header(conn, other, HOSTNAME)
    assert other.received_id != txn.received_id
    assert received.clean_helo("[IPv6:2001:db8::1]") == "[IPv6:2001:db8::1]"
    assert received.clean_helo("mx\r\n.example") == "mx??.example"


@pytest.mark.parametrize("name", ["relay.example.net", "a-b.c9.example", "x" * 63 + ".net"])
def test_a_valid_host_name_is_shown(name: str) -> None:
    assert received.valid_host_name(name)


@pytest.mark.parametrize("name", [
    "evil]).example", "[127.0.0.1]", "host[1].example", "under_score.example",
    "-lead.example", "trail-.example", "a..b", "", "x" * 64 + ".net",
    ".".join(["abc"] * 64),  # 255 characters
])
async def test_a_reverse_dns_name_that_is_no_host_name_is_unknown(name: str) -> None:
    assert not received.valid_host_name(name)
    conn = Connection(daemon="smtp", remote_ip="192.0.2.7", remote_port=1, local_port=25)
    done = asyncio.get_running_loop().create_future()
    done.set_result(name)
    conn.name_lookup = done
    assert await received.client_name(conn) == received.UNKNOWN


class HangingPTR(LoopbackDNS):
    """A resolver whose PTR queries never answer, and that notes when one is cancelled."""

    cancelled: list[str] = []
    started: list[str] = []

    async def query(self, name: str, rdtype: str) -> list[Any]:
        if rdtype != "PTR":
            return await super().query(name, rdtype)
        self.started.append(name.rstrip("."))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(name.rstrip("."))
            raise
        return []


async def test_the_name_lookup_ends_with_the_connection(
    start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    HangingPTR.cancelled, HangingPTR.started = [], []
    monkeypatch.setattr(appliance.smtpd.pipeline, "Resolver", HangingPTR)
    daemon = await start_daemon("smtp")
    raw = await RawClient.connect(port(daemon))
    assert (await raw.reply())[-1].startswith("220")
    await eventually(lambda: PTR_OF_LOOPBACK in HangingPTR.started, what="the PTR query")
    assert (await raw.command("QUIT")).startswith("221")
    raw.writer.close()
    await eventually(lambda: PTR_OF_LOOPBACK in HangingPTR.cancelled,
                     what="the lookup to be cancelled at disconnect")
