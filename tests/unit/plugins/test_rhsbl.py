"""rhsbl: sender domain block lists."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

ZONES = ["dbl.example", "multi.surbl.example"]


async def test_unlisted_sender_passes(make_plugin, conn, txn, dns):
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="someone@sender.example")
    assert await plugin.hook_mail(conn(), t, t.sender) is None
    assert ("sender.example.dbl.example", "A") in dns.asked
    assert ("sender.example.multi.surbl.example", "A") in dns.asked


async def test_listed_sender_is_refused_with_txt_reason(make_plugin, conn, txn, dns):
    dns.add("spammer.example.dbl.example", "A", "127.0.1.2")
    dns.add("spammer.example.dbl.example", "TXT", "https://dbl.example/lookup/spammer.example")
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    c, t = conn(), txn(sender="x@spammer.example")
    result = await plugin.hook_mail(c, t, t.sender)
    assert result.verdict is Verdict.DENY
    assert result.reply == ("550 5.7.1 Mail from spammer.example refused: "
                            "https://dbl.example/lookup/spammer.example")
    assert t.notes["rhsbl"] == "dbl.example"
    assert c.karma == -1


async def test_listed_without_txt_gets_default_reply(make_plugin, conn, txn, dns):
    dns.add("spammer.example.multi.surbl.example", "A", "127.0.0.8")
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="x@spammer.example")
    result = await plugin.hook_mail(conn(), t, t.sender)
    assert result.reply == ("550 5.7.1 Mail from spammer.example refused: "
                            "listed by multi.surbl.example")


async def test_custom_zone_message(make_plugin, conn, txn, dns):
    dns.add("spammer.example.dbl.example", "A", "127.0.1.2")
    plugin = make_plugin("rhsbl", enabled=True,
                         zones=["dbl.example:Domain %DOMAIN% is listed, see https://x.example/"])
    t = txn(sender="x@spammer.example")
    result = await plugin.hook_mail(conn(), t, t.sender)
    assert result.reply == ("550 5.7.1 Domain spammer.example is listed, "
                            "see https://x.example/")


async def test_subdomain_checks_registrable_domain(make_plugin, conn, txn, dns):
    dns.add("spammer.co.uk.dbl.example", "A", "127.0.1.2")
    plugin = make_plugin("rhsbl", enabled=True, zones=["dbl.example"])
    t = txn(sender="x@mail.spammer.co.uk")
    result = await plugin.hook_mail(conn(), t, t.sender)
    assert result.verdict is Verdict.DENY
    assert "spammer.co.uk" in result.reply


@pytest.mark.parametrize("answer", ["127.0.0.1", "127.255.255.254", "192.0.2.1"])
async def test_refused_and_foreign_answers_are_not_listings(make_plugin, conn, txn, dns,
                                                            answer):
    dns.add("sender.example.dbl.example", "A", answer)
    plugin = make_plugin("rhsbl", enabled=True, zones=["dbl.example"])
    t = txn()
    assert await plugin.hook_mail(conn(), t, t.sender) is None


async def test_null_sender_is_skipped(make_plugin, conn, txn, dns):
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    assert await plugin.hook_mail(conn(), txn(sender=""), "") is None
    assert dns.asked == []


@pytest.mark.parametrize("kw", [{"auth_user": "alice"}, {"relay_client": True},
                                {"whitelisted": True}])
async def test_trusted_clients_are_skipped(make_plugin, conn, txn, dns, kw):
    dns.add("spammer.example.dbl.example", "A", "127.0.1.2")
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="x@spammer.example")
    assert await plugin.hook_mail(conn(**kw), t, t.sender) is None
    assert dns.asked == []


async def test_whitelisted_sender_is_skipped(make_plugin, conn, txn, dns):
    dns.add("spammer.example.dbl.example", "A", "127.0.1.2")
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="x@spammer.example")
    t.whitelisted = True
    assert await plugin.hook_mail(conn(), t, t.sender) is None
    assert dns.asked == []


async def test_timeout_skips_zone_never_5xx(make_plugin, conn, txn, dns):
    dns.timeouts.update({"spammer.example.dbl.example", "spammer.example.multi.surbl.example"})
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="x@spammer.example")
    assert await plugin.hook_mail(conn(), t, t.sender) is None


async def test_timeout_in_one_zone_still_finds_other(make_plugin, conn, txn, dns):
    dns.timeouts.add("spammer.example.dbl.example")
    dns.add("spammer.example.multi.surbl.example", "A", "127.0.0.64")
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="x@spammer.example")
    result = await plugin.hook_mail(conn(), t, t.sender)
    assert result.verdict is Verdict.DENY


async def test_address_literal_is_not_looked_up(make_plugin, conn, txn, dns):
    plugin = make_plugin("rhsbl", enabled=True, zones=ZONES)
    t = txn(sender="x@[192.0.2.1]")
    assert await plugin.hook_mail(conn(), t, t.sender) is None
    assert dns.asked == []


def test_bad_zone_raises(make_plugin):
    with pytest.raises(PluginError):
        make_plugin("rhsbl", zones=["not a zone"])
