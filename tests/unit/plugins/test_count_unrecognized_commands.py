"""count_unrecognized_commands: 521 and hang up at the threshold."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict


async def test_below_threshold_declines_then_disconnects(make_plugin, conn):
    plugin = make_plugin("count_unrecognized_commands", threshold=3)
    c = conn()
    c.notes["unrecognized"] = 7  # the handler's own count does not confuse ours
    assert await plugin.hook_unrecognized_command(c, "GET") is None
    assert await plugin.hook_unrecognized_command(c, "Host:") is None
    assert c.karma == 0
    result = await plugin.hook_unrecognized_command(c, "User-Agent:")
    assert result.verdict is Verdict.DENY_DISCONNECT
    assert result.reply.startswith("521 5.5.1 ")
    assert c.karma == -1


async def test_default_threshold_is_four(make_plugin, conn):
    plugin = make_plugin("count_unrecognized_commands")
    c = conn()
    results = [await plugin.hook_unrecognized_command(c, "X") for _ in range(4)]
    assert results[:3] == [None, None, None]
    assert results[3].verdict is Verdict.DENY_DISCONNECT


async def test_bad_threshold(make_plugin):
    with pytest.raises(PluginError):
        make_plugin("count_unrecognized_commands", threshold=0)
