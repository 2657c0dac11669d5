"""tarpit: RCPTs after tarpit_count refused recipients in a session wait tarpit_delay."""

from __future__ import annotations

import copy
from typing import Any


async def test_only_the_recipients_after_the_count_wait(make_plugin, base_settings: dict[str, Any],
                                                         conn, txn) -> None:  # noqa: ANN001
    s = copy.deepcopy(base_settings)
    s.update(tarpit_count=2, tarpit_delay=7)
    plugin = make_plugin("tarpit", settings=s)
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    plugin.sleep = sleep
    c, t = conn(), txn()
    for refused in range(5):
        c.refused_recipients = refused
        assert await plugin.hook_rcpt(c, t, "x@example.com") is None  # never a verdict
    assert waited == [7, 7, 7]  # at 2, 3 and 4 refused before


async def test_zero_turns_it_off(make_plugin, base_settings: dict[str, Any], conn,
                                 txn) -> None:  # noqa: ANN001
    s = copy.deepcopy(base_settings)
    s["tarpit_count"] = 0
    plugin = make_plugin("tarpit", settings=s)
    c = conn()
    c.refused_recipients = 100

    async def sleep(seconds: float) -> None:
        raise AssertionError("waited")

    plugin.sleep = sleep
    assert await plugin.hook_rcpt(c, txn(), "x@example.com") is None
