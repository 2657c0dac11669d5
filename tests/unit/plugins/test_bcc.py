"""bcc: the archive address joins the envelope; mode cc also marks the message."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from tests.unit.plugins.conftest import message


def only_crlf(data: bytes) -> bool:
    return data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


async def test_cc_mode_copies_and_marks(make_plugin, conn, txn):
    plugin = make_plugin("bcc", enabled=True)
    t = txn(data=message())
    assert await plugin.hook_data_post(conn(), t) is None
    assert t.bcc == ["maillog@example.com"]
    assert t.data.startswith(b"X-Copied-To: maillog@example.com\r\n")
    assert t.message["X-Copied-To"] == "maillog@example.com"
    assert only_crlf(t.data)


async def test_bcc_mode_is_silent(make_plugin, conn, txn):
    plugin = make_plugin("bcc", enabled=True, mode="bcc", user="archive@elsewhere.example")
    t = txn(data=message())
    before = t.data
    await plugin.hook_data_post(conn(), t)
    assert t.bcc == ["archive@elsewhere.example"]
    assert t.data == before


async def test_incoming_copies_mail_to_our_domains_only(make_plugin, conn, txn):
    plugin = make_plugin("bcc", enabled=True, direction="incoming")
    inbound = txn(recipients=("alice@example.org",), data=message())
    await plugin.hook_data_post(conn(), inbound)
    assert inbound.bcc == ["maillog@example.com"]
    relayed = txn(sender="alice@example.com", recipients=("x@other.example",), data=message())
    await plugin.hook_data_post(conn(daemon="submission", auth_user="alice"), relayed)
    assert relayed.bcc == []


async def test_outgoing_needs_our_domain_and_a_trusted_client(make_plugin, conn, txn):
    plugin = make_plugin("bcc", enabled=True, direction="outgoing")
    sent = txn(sender="alice@example.com", recipients=("x@other.example",), data=message())
    await plugin.hook_data_post(conn(daemon="submission", auth_user="alice"), sent)
    assert sent.bcc == ["maillog@example.com"]
    from_lan = txn(sender="bob@example.org", recipients=("x@other.example",), data=message())
    await plugin.hook_data_post(conn(ip="192.168.1.20", relay_client=True), from_lan)
    assert from_lan.bcc == ["maillog@example.com"]
    forged = txn(sender="alice@example.com", recipients=("bob@example.com",), data=message())
    await plugin.hook_data_post(conn(), forged)  # internet client, no AUTH
    assert forged.bcc == []
    inbound = txn(recipients=("alice@example.com",), data=message())
    await plugin.hook_data_post(conn(), inbound)
    assert inbound.bcc == []


async def test_never_copies_twice(make_plugin, conn, txn):
    plugin = make_plugin("bcc", enabled=True)
    t = txn(recipients=("alice@example.com", "MailLog@example.com"), data=message())
    before = t.data
    await plugin.hook_data_post(conn(), t)
    assert t.bcc == []
    assert t.data == before
    again = txn(data=message())
    await plugin.hook_data_post(conn(), again)
    await plugin.hook_data_post(conn(), again)
    assert again.bcc == ["maillog@example.com"]
    assert again.data.count(b"X-Copied-To:") == 1


@pytest.mark.parametrize("config", [{"mode": "copy"}, {"direction": "sideways"},
                                    {"user": "two words"}, {"user": "a@b@c"}, {"user": ""}])
def test_bad_settings_are_refused(make_plugin, config):
    with pytest.raises(PluginError):
        make_plugin("bcc", enabled=True, **config)



@pytest.fixture(autouse=True)
def maillog_exists(base_settings):
    """SME's archive user, created as the SME wiki says before enabling Bcc."""
    base_settings["addresses"]["maillog@example.com"] = ["maillog@example.com"]


def test_an_archive_address_that_does_not_exist_is_refused_at_load(make_plugin,
                                                                   base_settings):
    from appliance.smtpd.plugins import PluginError

    del base_settings["addresses"]["maillog@example.com"]
    with pytest.raises(PluginError, match="does not exist"):
        make_plugin("bcc", user="maillog")  # SME's default: the user must be created
    assert make_plugin("bcc", user="archive@elsewhere.example").address == (
        "archive@elsewhere.example")
