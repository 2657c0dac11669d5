"""resolvable_fromhost: the sender's domain must exist and take replies."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

PUBLIC = "93.184.216.34"
PUBLIC6 = "2606:2800:220:1::1"


async def mail(plugin, conn, txn, sender, **conn_kw):
    c, t = conn(**conn_kw), txn(sender=sender)
    return c, t, await plugin.hook_mail(c, t, sender)


async def test_domain_with_resolving_mx_passes(make_plugin, conn, txn, dns):
    dns.add("sender.example", "MX", "10 mx.sender.example.")
    dns.add("mx.sender.example", "A", PUBLIC)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result is None


async def test_second_mx_resolving_is_enough(make_plugin, conn, txn, dns):
    dns.add("sender.example", "MX", "10 mx1.sender.example.", "20 mx2.sender.example.")
    dns.add("mx2.sender.example", "AAAA", PUBLIC6)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result is None


async def test_domain_with_only_a_record_passes(make_plugin, conn, txn, dns):
    dns.add("sender.example", "A", PUBLIC)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result is None


async def test_domain_with_only_aaaa_passes(make_plugin, conn, txn, dns):
    dns.add("sender.example", "AAAA", PUBLIC6)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result is None


async def test_nonexistent_domain_is_refused(make_plugin, conn, txn, dns):
    plugin = make_plugin("resolvable_fromhost")
    c, t, result = await mail(plugin, conn, txn, "a@nowhere.example")
    assert result.verdict is Verdict.DENY
    assert result.reply == ("550 5.1.8 Sender address rejected: Domain nowhere.example "
                            "does not exist")
    assert c.karma == -1
    assert t.notes["resolvable_fromhost"]


async def test_null_mx_is_refused(make_plugin, conn, txn, dns):
    dns.add("nomail.example", "MX", "0 .")
    dns.add("nomail.example", "A", PUBLIC)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@nomail.example")
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("550 5.7.27 ")
    assert "null MX" in result.reply


async def test_mx_that_does_not_resolve_is_refused(make_plugin, conn, txn, dns):
    dns.add("sender.example", "MX", "10 gone.sender.example.")
    dns.add("sender.example", "A", PUBLIC)  # not used when MX records exist
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("550 5.1.8 ")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1",
                                     "169.254.1.1", "0.0.0.0", "224.0.0.1", "::1",
                                     "fd00::1"])
async def test_private_addresses_only_are_refused(make_plugin, conn, txn, dns, address):
    dns.add("sender.example", "A" if "." in address else "AAAA", address)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result.verdict is Verdict.DENY
    assert "private or reserved" in result.reply


async def test_mx_with_private_address_is_refused(make_plugin, conn, txn, dns):
    dns.add("sender.example", "MX", "10 mx.sender.example.")
    dns.add("mx.sender.example", "A", "10.0.0.25")
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result.verdict is Verdict.DENY


async def test_one_public_address_among_private_passes(make_plugin, conn, txn, dns):
    dns.add("sender.example", "A", "10.0.0.1", PUBLIC)
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result is None


async def test_mx_timeout_defers(make_plugin, conn, txn, dns):
    dns.timeouts.add("sender.example")
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply == ("451 4.4.3 Sender domain sender.example lookup failed, "
                            "try again later")


async def test_mx_host_timeout_defers(make_plugin, conn, txn, dns):
    dns.add("sender.example", "MX", "10 mx.sender.example.")
    dns.timeouts.add("mx.sender.example")
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply.startswith("451 4.4.3 ")


async def test_timeout_with_naughty_mode_is_still_only_temporary(make_plugin, conn, txn,
                                                                 dns):
    dns.timeouts.add("sender.example")
    plugin = make_plugin("resolvable_fromhost", reject="naughty")
    c, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result.verdict is Verdict.DENYSOFT
    assert c.naughty is None


async def test_aaaa_timeout_with_valid_a_passes(make_plugin, conn, txn, dns):
    dns.add("sender.example", "A", PUBLIC)
    real = dns.query

    async def query(name, rdtype):
        if rdtype == "AAAA":
            dns.timeouts.add(name.lower())
        return await real(name, rdtype)

    dns.query = query
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@sender.example")
    assert result is None


async def test_reject_naughty_and_off(make_plugin, conn, txn, dns):
    plugin = make_plugin("resolvable_fromhost", reject="naughty")
    c, _, result = await mail(plugin, conn, txn, "a@nowhere.example")
    assert result.verdict is Verdict.NAUGHTY
    assert result.reply.startswith("550 5.1.8 ")
    assert c.karma == 0  # the pipeline takes the point for NAUGHTY
    plugin = make_plugin("resolvable_fromhost", reject="off")
    c, _, result = await mail(plugin, conn, txn, "a@nowhere.example")
    assert result.verdict is Verdict.DECLINED
    assert c.karma == -1


async def test_public_address_literal_passes_with_karma_point(make_plugin, conn, txn, dns):
    plugin = make_plugin("resolvable_fromhost")
    c, _, result = await mail(plugin, conn, txn, f"a@[{PUBLIC}]")
    assert result is None
    assert c.karma == -1
    assert dns.asked == []


@pytest.mark.parametrize("literal", ["[10.0.0.1]", "[127.0.0.1]", "[IPv6:::1]"])
async def test_private_address_literal_is_refused(make_plugin, conn, txn, dns, literal):
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, f"a@{literal}")
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("550 5.1.8 ")


@pytest.mark.parametrize("sender", ["a@localhost", "nodomain", "a@bad..example",
                                    "a@[not-an-ip]"])
async def test_malformed_domains_are_refused(make_plugin, conn, txn, dns, sender):
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, sender)
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("550 5.1.7 ")
    assert dns.asked == []


async def test_null_sender_is_skipped(make_plugin, conn, txn, dns):
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "")
    assert result is None
    assert dns.asked == []


@pytest.mark.parametrize("kw", [{"auth_user": "alice"}, {"relay_client": True},
                                {"whitelisted": True}])
async def test_trusted_clients_are_skipped(make_plugin, conn, txn, dns, kw):
    plugin = make_plugin("resolvable_fromhost")
    _, _, result = await mail(plugin, conn, txn, "a@nowhere.example", **kw)
    assert result is None
    assert dns.asked == []


async def test_whitelisted_sender_is_skipped(make_plugin, conn, txn, dns):
    plugin = make_plugin("resolvable_fromhost")
    c, t = conn(), txn(sender="a@nowhere.example")
    t.whitelisted = True
    assert await plugin.hook_mail(c, t, t.sender) is None
    assert dns.asked == []


async def test_disabled(make_plugin, conn, txn, dns):
    plugin = make_plugin("resolvable_fromhost", enabled=False)
    _, _, result = await mail(plugin, conn, txn, "a@nowhere.example")
    assert result is None


def test_bad_reject_raises(make_plugin):
    with pytest.raises(PluginError):
        make_plugin("resolvable_fromhost", reject="soft")


async def test_a_busy_sender_domain_is_judged_once_a_minute(make_plugin, conn, txn, dns):
    dns.add("busy.example", "MX", "10 mx.busy.example.")
    dns.add("mx.busy.example", "A", "93.184.216.34")
    plugin = make_plugin("resolvable_fromhost")
    for _ in range(3):
        t = txn(sender="a@busy.example")
        assert await plugin.hook_mail(conn(), t, t.sender) is None
    assert dns.asked.count(("busy.example", "MX")) == 1
