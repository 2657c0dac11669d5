"""auth: counts failed AUTH attempts and hangs up at max_failures."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict


async def test_disconnects_at_max_failures(make_plugin, conn):
    plugin = make_plugin("auth", max_failures=3)
    c = conn()
    assert await plugin.hook_auth(c, "alice", False) is None
    assert await plugin.hook_auth(c, "alice", False) is None
    result = await plugin.hook_auth(c, "alice", False)
    assert result.verdict is Verdict.DENYSOFT_DISCONNECT
    assert result.reply.startswith("421 4.7.0 ")
    assert c.karma == -3


async def test_success_resets_the_count_and_earns_karma(make_plugin, conn):
    plugin = make_plugin("auth", max_failures=2)
    c = conn()
    assert await plugin.hook_auth(c, "alice", False) is None
    assert await plugin.hook_auth(c, "alice", True) is None
    assert c.karma == 0  # -1 for the failure, +1 for the success
    assert await plugin.hook_auth(c, "alice", False) is None  # counting starts over


async def test_one_failure_allowed_when_max_is_one(make_plugin, conn):
    plugin = make_plugin("auth", max_failures=1)
    result = await plugin.hook_auth(conn(), "", False)
    assert result.verdict is Verdict.DENYSOFT_DISCONNECT


async def test_mechanisms_are_checked(make_plugin):
    assert make_plugin("auth", mechanisms=["plain"]).mechanisms == ("PLAIN",)
    with pytest.raises(PluginError, match="CRAM-MD5"):
        make_plugin("auth", mechanisms=["PLAIN", "CRAM-MD5"])
    with pytest.raises(PluginError):
        make_plugin("auth", mechanisms=[])
    with pytest.raises(PluginError, match="max_failures"):
        make_plugin("auth", max_failures=0)
