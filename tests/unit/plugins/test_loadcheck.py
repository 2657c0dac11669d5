"""loadcheck: 451 while the load average is above max_load."""

from __future__ import annotations

from appliance.smtpd.results import Verdict


def _with_load(plugin, load):
    plugin.getloadavg = lambda: (load, 0.0, 0.0)
    return plugin


async def test_defers_above_max_load(make_plugin, conn):
    plugin = _with_load(make_plugin("loadcheck", max_load=7), 7.5)
    result = await plugin.hook_connect(conn())
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply.startswith("451 4.3.2 ")


async def test_accepts_at_or_below_max_load(make_plugin, conn):
    plugin = _with_load(make_plugin("loadcheck", max_load=7), 7.0)
    assert await plugin.hook_connect(conn()) is None


async def test_trusted_clients_are_served_under_load(make_plugin, conn):
    plugin = _with_load(make_plugin("loadcheck", max_load=1), 50.0)
    assert await plugin.hook_connect(conn(whitelisted=True)) is None
    assert await plugin.hook_connect(conn(relay_client=True)) is None


async def test_no_load_average_means_no_deferral(make_plugin, conn):
    plugin = make_plugin("loadcheck", max_load=1)

    def unavailable():
        raise OSError("no load average")

    plugin.getloadavg = unavailable
    assert await plugin.hook_connect(conn()) is None
