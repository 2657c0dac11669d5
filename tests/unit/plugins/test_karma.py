"""karma: history per client in SQLite; bad clients wait penalty_days."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.plugins.karma import DAY
from appliance.smtpd.results import Verdict

IP = "198.51.100.7"


@pytest.fixture
def karma(make_plugin, clock):
    def make(**config):
        plugin = make_plugin("karma", **config)
        plugin.clock = clock
        return plugin

    return make


async def _connection(plugin, conn, points, ip=IP):
    c = conn(ip=ip)
    result = await plugin.hook_connect(c)
    c.karma += points
    await plugin.hook_disconnect(c)
    return result, c


async def test_no_database_until_first_use(karma, tmp_path):
    karma()
    assert not (tmp_path / "state" / "karma.sqlite").exists()


async def test_unknown_host_passes(karma, conn, tmp_path):
    plugin = karma()
    assert await plugin.hook_connect(conn()) is None
    assert (tmp_path / "state" / "karma.sqlite").exists()


async def test_bad_host_goes_to_the_penalty_box_and_comes_out(karma, conn, clock):
    plugin = karma(negative=2, strikes=3, penalty_days=1)
    for _ in range(2):
        result, _ = await _connection(plugin, conn, -3)
        assert result is None
    c = conn()
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.NAUGHTY
    assert result.reply.startswith("550 5.7.1 ") and IP in result.reply
    assert c.notes["karma_history"] == -2
    clock.now += DAY + 1
    assert await plugin.hook_connect(conn()) is None


async def test_good_history_and_neutral_connections(karma, conn):
    plugin = karma(negative=2, strikes=3)
    await _connection(plugin, conn, +3)  # good
    for _ in range(2):
        await _connection(plugin, conn, -3)  # bad
    await _connection(plugin, conn, -2)  # neutral: not counted
    c = conn()
    assert await plugin.hook_connect(c) is None  # 2 bad - 1 good < 2
    assert c.notes["karma_history"] == -1
    await _connection(plugin, conn, -5)
    result = await plugin.hook_connect(conn())
    assert result.verdict is Verdict.NAUGHTY


async def test_other_hosts_are_not_affected(karma, conn):
    plugin = karma(negative=1)
    await _connection(plugin, conn, -3)
    assert (await plugin.hook_connect(conn())).verdict is Verdict.NAUGHTY
    assert await plugin.hook_connect(conn(ip="198.51.100.8")) is None


async def test_an_ipv6_host_is_its_64_and_cannot_leave_by_a_new_address(karma, conn):
    plugin = karma(negative=1)
    await _connection(plugin, conn, -3, ip="2001:db8:7:1::25")
    moved = await plugin.hook_connect(conn(ip="2001:db8:7:1:dead:beef:0:1"))
    assert moved.verdict is Verdict.NAUGHTY and "2001:db8:7:1::/64" in moved.reply
    assert await plugin.hook_connect(conn(ip="2001:db8:7:2::25")) is None  # another /64


async def test_an_ipv4_mapped_client_is_its_ipv4_address(karma, conn):
    plugin = karma(negative=1)
    await _connection(plugin, conn, -3, ip="::ffff:198.51.100.9")
    assert (await plugin.hook_connect(conn(ip="198.51.100.9"))).verdict is Verdict.NAUGHTY


async def test_queued_message_is_good_karma(karma, conn, txn):
    plugin = karma()
    c = conn()
    await plugin.hook_queue(c, txn())
    assert c.karma == 1


async def test_trusted_connections_are_not_recorded(karma, conn):
    plugin = karma(negative=1)
    c = conn(whitelisted=True)
    assert await plugin.hook_connect(c) is None
    c.karma = -10
    await plugin.hook_disconnect(c)
    authed = conn()
    authed.auth_user = "alice"
    authed.karma = -10
    await plugin.hook_disconnect(authed)
    assert await plugin.hook_connect(conn()) is None


async def test_daemons_share_the_history(karma, conn):
    smtp, submission = karma(negative=1), karma(negative=1)
    await _connection(smtp, conn, -3)
    assert (await submission.hook_connect(conn())).verdict is Verdict.NAUGHTY


async def test_database_trouble_never_refuses(make_plugin, conn, tmp_path):
    (tmp_path / "state").write_text("not a directory")
    plugin = make_plugin("karma")
    c = conn()
    assert await plugin.hook_connect(c) is None
    c.karma = -5
    await plugin.hook_disconnect(c)  # logged, not raised


async def test_bad_settings(make_plugin):
    with pytest.raises(PluginError, match="strikes"):
        make_plugin("karma", strikes=0)


async def test_marked_message_earns_nothing_at_queue(karma, conn, txn):
    c = conn()
    c.naughty = ("550 5.7.1 listed", "dnsbl")
    await karma().hook_queue(c, txn())
    assert c.karma == 0


async def test_connections_refused_as_naughty_count_as_bad_with_default_strikes(
        karma, conn, make_plugin):
    from appliance.smtpd.pipeline import Pipeline
    from appliance.smtpd.results import naughty

    plugin = karma(negative=2, strikes=3)  # SME's defaults
    dnsbl_like = make_plugin("whitelists")  # any plugin object; we give its verdict by hand

    async def listed(c):
        return naughty("550 5.7.1 Listed")

    dnsbl_like.hook_connect = listed
    chain = Pipeline([plugin, dnsbl_like, make_plugin("naughty")])
    for _ in range(2):
        c = conn()
        await chain.run("connect", c)
        assert c.naughty is not None and c.karma == -1  # one point only
        await plugin.hook_disconnect(c)
    result = await plugin.hook_connect(conn())
    assert result is not None and result.verdict is Verdict.NAUGHTY
