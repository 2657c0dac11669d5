"""The plugins' recent-verdict cache: expires, and evicts the least recently used."""

from __future__ import annotations

import pytest

from appliance.smtpd import recent
from appliance.smtpd.recent import MISSING, Recent


def test_expired_entries_are_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(recent.time, "monotonic", lambda: now[0])
    r: Recent[str] = Recent(ttl=60)
    r.put("a", "x")
    assert r.get("a") == "x"
    now[0] += 61
    assert r.get("a") is MISSING


def test_the_least_recently_used_goes_first() -> None:
    r: Recent[int] = Recent(size=2)
    r.put("a", 1)
    r.put("b", 2)
    assert r.get("a") == 1  # a is now the most recent
    r.put("c", 3)
    assert r.get("b") is MISSING and r.get("a") == 1 and r.get("c") == 3
    r.put("a", None)  # None is a value, not a miss
    assert r.get("a") is None
