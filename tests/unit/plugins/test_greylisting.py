"""greylisting: the first try of a triplet is deferred; a timely retry passes."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

RCPT = "alice@example.com"


@pytest.fixture
def grey(make_plugin, clock):
    def make(**config):
        settings = {"black_timeout": 300, "grey_timeout": 3600, "white_timeout": 86400}
        settings.update(config)
        plugin = make_plugin("greylisting", **settings)
        plugin.clock = clock
        return plugin

    return make


async def _try(plugin, conn, txn, ip="198.51.100.7", sender="bob@sender.example", rcpt=RCPT):
    return await plugin.hook_rcpt(conn(ip=ip), txn(sender=sender), rcpt)


def _deferred(result):
    return result is not None and result.verdict is Verdict.DENYSOFT and \
        result.reply.startswith("451 4.7.1 ")


async def test_first_try_deferred_timely_retry_passes_then_welcome(grey, conn, txn, clock):
    plugin = grey()
    assert _deferred(await _try(plugin, conn, txn))
    clock.now += 100
    assert _deferred(await _try(plugin, conn, txn))  # too early
    clock.now += 250  # 350 s after the first try: the clock did not restart at 100
    assert await _try(plugin, conn, txn) is None
    clock.now += 80000
    assert await _try(plugin, conn, txn) is None  # whitelisted, renewed
    clock.now += 80000
    assert await _try(plugin, conn, txn) is None


async def test_same_network_counts_as_the_same_client(grey, conn, txn, clock):
    plugin = grey()
    assert _deferred(await _try(plugin, conn, txn, ip="198.51.100.7"))
    clock.now += 400
    assert await _try(plugin, conn, txn, ip="198.51.100.200") is None
    assert _deferred(await _try(plugin, conn, txn, ip="198.51.101.7"))


async def test_each_sender_and_recipient_is_its_own_triplet(grey, conn, txn, clock):
    plugin = grey()
    await _try(plugin, conn, txn)
    clock.now += 400
    assert await _try(plugin, conn, txn) is None
    assert _deferred(await _try(plugin, conn, txn, rcpt="bob@example.com"))
    assert _deferred(await _try(plugin, conn, txn, sender="eve@sender.example"))


async def test_late_retry_and_expired_whitelist_start_over(grey, conn, txn, clock):
    plugin = grey()
    await _try(plugin, conn, txn)
    clock.now += 4000  # after grey_timeout
    assert _deferred(await _try(plugin, conn, txn))
    clock.now += 400
    assert await _try(plugin, conn, txn) is None
    clock.now += 90000  # after white_timeout
    assert _deferred(await _try(plugin, conn, txn))


async def test_trusted_and_whitelisted_are_not_greylisted(grey, conn, txn):
    plugin = grey()
    assert await plugin.hook_rcpt(conn(relay_client=True), txn(), RCPT) is None
    assert await plugin.hook_rcpt(conn(whitelisted=True), txn(), RCPT) is None
    t = txn()
    t.whitelisted = True
    assert await plugin.hook_rcpt(conn(), t, RCPT) is None


async def test_daemons_share_the_list(grey, conn, txn, clock):
    smtp, other = grey(), grey()
    await _try(smtp, conn, txn)
    clock.now += 400
    assert await _try(other, conn, txn) is None


async def test_database_trouble_lets_mail_through(make_plugin, conn, txn, tmp_path):
    (tmp_path / "state").write_text("not a directory")
    assert await make_plugin("greylisting").hook_rcpt(conn(), txn(), RCPT) is None


async def test_grey_window_must_outlast_the_black_one(make_plugin):
    with pytest.raises(PluginError, match="grey_timeout"):
        make_plugin("greylisting", black_timeout=3000, grey_timeout=600)


async def test_relay_attempts_are_not_greylisted(grey, conn, txn):
    plugin = grey()
    t = txn(recipients=())
    # not ours: left to rcpt_ok's relay refusal, never a 451 that invites a retry
    assert await plugin.hook_rcpt(conn(), t, "victim@elsewhere.example") is None


async def test_an_ipv6_client_is_its_64(grey, conn, txn, clock):
    plugin = grey()
    assert _deferred(await _try(plugin, conn, txn, ip="2001:db8:7:1::25"))
    clock.now += 400  # the retry comes from another address of the same /64
    assert await _try(plugin, conn, txn, ip="2001:db8:7:1:aaaa::9") is None
    assert _deferred(await _try(plugin, conn, txn, ip="2001:db8:7:2::25"))
