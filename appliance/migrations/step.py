"""What a migration step is: one change a new format needs, made through the journal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.migrations.journal import Journal


@dataclass(frozen=True)
class Step:
    """One step to format `to_format`, from the format before it.

    `run(journal)` makes the change, calling journal.keep(path) before it changes or
    deletes a path on the volume and journal.create(path) before it makes one, and
    returns what it did, one line each, for the log. It raises on failure; the
    migration then undoes every step. A step must also do the right thing on a volume
    that already has what it makes (a volume someone set up by hand)."""

    to_format: int
    name: str  # short, for "migration step NAME failed"
    description: str  # for "migrate: format 1 -> 2: DESCRIPTION"
    run: Callable[[Journal], list[str]]
