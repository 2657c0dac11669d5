"""earlytalker: clients that send before the greeting (or before the 354) are refused."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict


def _plugin(make_plugin, **config):
    plugin = make_plugin("earlytalker", **config)
    plugin.slept = []

    async def sleep(seconds):
        plugin.slept.append(seconds)

    plugin.sleep = sleep
    return plugin


def _talker(conn, **kw):
    return conn(input_pending=lambda: True, **kw)


async def test_talker_at_connect_is_marked_naughty_by_default(make_plugin, conn):
    plugin = _plugin(make_plugin)
    c = _talker(conn)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.NAUGHTY
    assert result.reply.startswith("554 5.7.1 ")
    assert plugin.slept == [1]  # the greeting was held for `wait`
    assert c.karma == 0  # the pipeline charges the naughty mark


async def test_talker_denied_costs_karma(make_plugin, conn):
    plugin = _plugin(make_plugin, reject="deny", wait=3)
    c = _talker(conn)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("554 ")
    assert plugin.slept == [3]
    assert c.karma == -1


async def test_reject_off_only_logs(make_plugin, conn):
    plugin = _plugin(make_plugin, reject="off")
    c = _talker(conn)
    result = await plugin.hook_connect(c)
    assert result is None or result.verdict is Verdict.DECLINED
    assert c.karma == -1


async def test_quiet_client_passes_and_wait_zero_does_not_sleep(make_plugin, conn):
    plugin = _plugin(make_plugin, wait=0, reject="deny")
    assert await plugin.hook_connect(conn()) is None
    assert plugin.slept == []


async def test_whitelisted_client_is_not_held(make_plugin, conn):
    plugin = _plugin(make_plugin, reject="deny")
    assert await plugin.hook_connect(_talker(conn, whitelisted=True)) is None
    assert plugin.slept == []


async def test_check_at_data(make_plugin, conn, txn):
    plugin = _plugin(make_plugin, check_at="data", reject="deny", wait=0)
    c = _talker(conn)
    assert await plugin.hook_connect(c) is None  # not checked at connect
    result = await plugin.hook_data(c, txn())
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("554 5.7.1 ")
    assert await plugin.hook_data(conn(), txn()) is None
    assert await plugin.hook_data(_talker(conn, relay_client=True), txn()) is None
    t = txn()
    t.whitelisted = True
    assert await plugin.hook_data(c, t) is None


async def test_connect_mode_ignores_data(make_plugin, conn, txn):
    plugin = _plugin(make_plugin, reject="deny")
    assert await plugin.hook_data(_talker(conn), txn()) is None


@pytest.mark.parametrize("config", [{"wait": -1}, {"check_at": "rcpt"}, {"reject": "maybe"}])
async def test_bad_settings(make_plugin, config):
    with pytest.raises(PluginError, match="earlytalker"):
        make_plugin("earlytalker", **config)


async def test_a_polite_client_is_remembered_and_not_held_again(make_plugin, conn) -> None:
    plugin = make_plugin("earlytalker", wait=1, remember=3600)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    plugin.sleep = sleep
    assert await plugin.hook_connect(conn()) is None
    assert await plugin.hook_connect(conn()) is None  # same address: greeted at once
    assert slept == [1]
    talker = conn(ip="203.0.113.66")
    talker.input_pending = lambda: True
    assert (await plugin.hook_connect(talker)).verdict.value == "naughty"
    assert (await plugin.hook_connect(talker)).verdict.value == "naughty"  # not remembered
    assert slept == [1, 1, 1]


async def test_remember_zero_holds_every_time(make_plugin, conn) -> None:
    plugin = make_plugin("earlytalker", wait=1, remember=0)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    plugin.sleep = sleep
    await plugin.hook_connect(conn())
    await plugin.hook_connect(conn())
    assert slept == [1, 1]
