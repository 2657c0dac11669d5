"""Step: appliance.toml and its last good copy get the key names of the new format.

Driven by the schema's KEY_HISTORY (old dotted key -> new one, or removed): a release
that renames or removes a key adds a row there and `step(N)` here to the migration's
list. tomlkit edits the file in place, so the user's comments, order and layout stay:
a renamed key keeps its place, its comment and its value; a removed one becomes a
comment in its table, `# old = value  (removed in format N: why)`. Before the first
change appliance.toml is copied beside itself as `appliance.toml.formatN-1`, as the
older release left it. The last good copy (appliance/recovery.py) is migrated too, but
without a backup: otherwise the recovery would boot a file of the old format.

A file that is not valid TOML is left as it is: the boot reports it as it always does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.container import Container

from appliance import paths, recovery
from appliance.config import write_atomic
from appliance.config.schema import KEY_HISTORY, Renamed
from appliance.migrations.journal import Journal
from appliance.migrations.step import Step


def step(to_format: int) -> Step:
    rows = tuple(row for row in KEY_HISTORY if row.format == to_format)
    what = "; ".join(f"{r.old} -> {r.new}" if r.new else f"{r.old} removed" for r in rows)
    return Step(to_format, "toml-keys", f"appliance.toml keys: {what or 'none'}",
                lambda journal: migrate_files(journal, rows, to_format))


def backup_path(to_format: int) -> Path:
    return paths.CONFIG.with_name(f"{paths.CONFIG.name}.format{to_format - 1}")


def migrate_files(journal: Journal, rows: tuple[Renamed, ...], to_format: int) -> list[str]:
    done: list[str] = []
    for path, backup in ((paths.CONFIG, backup_path(to_format)),
                         (recovery.last_good_path(), None)):
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            document = tomlkit.parse(text)
        except tomlkit.exceptions.ParseError as e:
            done.append(f"{path.name} is not valid TOML ({e}): left as it is")
            continue
        changes = [c for row in rows if (c := apply_row(document, row, to_format))]
        if not changes:
            done.append(f"{path.name}: nothing to rename")
            continue
        if backup is not None:
            journal.create(backup)
            shutil.copy2(path, backup)  # as the older release left it, mode and times
            done.append(f"{path.name}: kept the old file as {backup.name}")
        journal.keep(path)
        write_atomic(path, tomlkit.dumps(document), mode=path.stat().st_mode & 0o7777)
        done.extend(f"{path.name}: {change}" for change in changes)
    return done


def _table(document: tomlkit.TOMLDocument, dotted: str) -> Any:
    node: Any = document
    for part in dotted.split(".") if dotted else ():
        if not hasattr(node, "get") or not hasattr(node.get(part), "get"):
            return None
        node = node[part]
    return node


def _ensure_table(document: tomlkit.TOMLDocument, dotted: str) -> Any:
    node: Any = document
    for part in dotted.split(".") if dotted else ():
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
    return node


def apply_row(document: tomlkit.TOMLDocument, row: Renamed, to_format: int) -> str | None:
    """Make ROW's change in DOCUMENT; what it did, or None when the old key is not set."""
    old_table, _, old_key = row.old.rpartition(".")
    table = _table(document, old_table)
    if table is None or old_key not in table:
        return None
    item = table.item(old_key) if hasattr(table, "item") else table[old_key]
    value = item.unwrap() if hasattr(item, "unwrap") else item
    if row.new is None:
        del table[old_key]
        table.add(tomlkit.comment(f"{old_key} = {tomlkit.item(value).as_string()}  "
                                  f"(removed in format {to_format}: {row.why})"))
        return f"removed {row.old} (kept as a comment)"
    new_table, _, new_key = row.new.rpartition(".")
    if new_table == old_table and new_key not in table:
        container = getattr(table, "value", table)
        if isinstance(container, Container):
            container._replace(old_key, new_key, item)  # in place: its line, its comment
        else:  # a table tomlkit spreads over several places: the value, at the end
            del table[old_key]
            table[new_key] = item
        return f"renamed {row.old} to {row.new} ({value!r})"
    target = _ensure_table(document, new_table)
    del table[old_key]
    if new_key in target:  # someone already wrote the new key: it wins
        table.add(tomlkit.comment(f"{old_key} = {tomlkit.item(value).as_string()}  "
                                  f"(format {to_format}: {row.new} is set)"))
        return f"dropped {row.old} ({value!r}): {row.new} is already set"
    target[new_key] = item
    return f"moved {row.old} to {row.new} ({value!r})"
