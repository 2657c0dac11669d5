"""A wall clock tests move by hand (`clock.now += 3600`), for the code that takes one
(bans, send limits, greylisting, karma)."""

from __future__ import annotations

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now
