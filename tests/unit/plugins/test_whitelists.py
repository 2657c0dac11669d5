"""whitelists: hosts whitelist the connection, HELO names only the HELO checks, senders
the transaction."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError


async def test_listed_host_and_network_are_whitelisted(make_plugin, conn):
    plugin = make_plugin("whitelists", hosts=["192.0.2.10", "198.51.100.0/24", "2001:db8::/32"])
    for ip in ("192.0.2.10", "198.51.100.77", "2001:db8::25"):
        c = conn(ip=ip)
        assert await plugin.hook_connect(c) is None
        assert c.whitelisted and c.trusted
    other = conn(ip="203.0.113.5")
    await plugin.hook_connect(other)
    assert not other.whitelisted


async def test_bad_network_is_a_plugin_error(make_plugin):
    with pytest.raises(PluginError, match="whitelists"):
        make_plugin("whitelists", hosts=["not-an-ip"])


async def test_helo_whitelist_only_notes_the_helo_and_follows_the_last_ehlo(make_plugin, conn):
    plugin = make_plugin("whitelists", helo=["mx.partner.example", "*.pool.example"])
    c = conn()
    assert await plugin.hook_helo(c, "MX.Partner.Example.") is None
    assert c.helo_whitelisted is True
    assert not c.whitelisted  # a HELO name is no reason to skip the DNS lists
    await plugin.hook_helo(c, "a7.pool.example")
    assert c.helo_whitelisted is True
    await plugin.hook_helo(c, "other.example")
    assert c.helo_whitelisted is False


async def test_senders_address_domain_and_bare_domain(make_plugin, conn, txn):
    plugin = make_plugin("whitelists",
                         senders=["boss@partner.example", "@friends.example", "old.example"])
    c = conn()
    for sender, listed in (("Boss@Partner.example", True), ("other@partner.example", False),
                           ("anyone@friends.example", True), ("x@old.example", True),
                           ("x@sub.friends.example", False)):
        t = txn(sender=sender)
        assert await plugin.hook_mail(c, t, sender) is None
        assert t.whitelisted is listed, sender


async def test_null_sender_is_never_whitelisted(make_plugin, conn, txn):
    plugin = make_plugin("whitelists", senders=["@friends.example"])
    t = txn(sender="")
    await plugin.hook_mail(conn(), t, "<>")
    assert not t.whitelisted
