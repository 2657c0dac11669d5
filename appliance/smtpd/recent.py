"""Recent verdicts: a small time-limited LRU for plugins that judge the same thing often.

A busy sender domain or a repeat correspondent is judged once a minute, not per message.
Only final verdicts go in: callers never store a temporary failure.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
MISSING = object()


class Recent(Generic[V]):
    def __init__(self, ttl: float = 60.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | object:
        """The remembered value, or MISSING (never seen, or expired)."""
        hit = self._items.get(key)
        if hit is None:
            return MISSING
        if hit[0] <= time.monotonic():
            del self._items[key]
            return MISSING
        self._items.move_to_end(key)
        return hit[1]

    def put(self, key: Hashable, value: V) -> None:
        self._items[key] = (time.monotonic() + self.ttl, value)
        self._items.move_to_end(key)
        if len(self._items) > self.size:
            self._items.popitem(last=False)
