"""Set, read and remove single settings by dotted name, keeping the file's comments.

    smtpd.dnsbl.enabled                a key of a section
    domains.example.org.mail_server    a key of a collection entry (names may hold dots)

Values arrive as command-line strings and are converted by the schema's type for the
key: booleans accept true/false, yes/no, on/off, enabled/disabled (SME's words), lists
take one argument per item or one comma-separated argument.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.items import Table

from appliance.config.load import Config, ConfigError
from appliance.config.schema import COLLECTIONS, SECTIONS, Key

TRUE = {"true", "yes", "on", "enabled", "1"}
FALSE = {"false", "no", "off", "disabled", "0"}


def resolve(dotted: str) -> tuple[list[str], Key]:
    """The table path (as a list of names) and the key declaration, or ConfigError."""
    head, _, name = dotted.rpartition(".")
    for spec in SECTIONS:
        if spec.path == head and (key := spec.key(name)):
            return head.split("."), key
    for coll in COLLECTIONS:
        prefix = coll.path + "."
        if head.startswith(prefix) and (key := coll.key(name)):
            entry = head[len(prefix):]
            if not coll.name_pattern.match(entry):
                raise ConfigError(f"bad name; must be {coll.name_allowed}", key=head)
            return [coll.path, entry], key
    raise ConfigError("no such setting (see docs/settings.md)", key=dotted)


def convert(key: Key, raw: list[str], dotted: str) -> Any:
    if key.kind is list:
        if len(raw) == 1:
            return [v.strip() for v in raw[0].split(",") if v.strip()]
        return [v for v in raw if v]
    if len(raw) != 1:
        raise ConfigError("takes exactly one value", key=dotted)
    value = raw[0]
    if key.kind is bool:
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise ConfigError("must be true or false", key=dotted, value=value)
    if key.kind is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError("must be an integer", key=dotted, value=value) from None
    if key.kind is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError("must be a number", key=dotted, value=value) from None
    return value


def _table(doc: tomlkit.TOMLDocument, names: list[str], create: bool) -> Table | None:
    node: Any = doc
    for i, name in enumerate(names):
        if name not in node:
            if not create:
                return None
            node.add(name, tomlkit.table(is_super_table=i < len(names) - 1))
        node = node[name]
    return node


def set_value(config: Config, dotted: str, raw: list[str]) -> None:
    names, key = resolve(dotted)
    value = convert(key, raw, dotted)
    table = _table(config.document, names, create=True)
    assert table is not None
    table[key.name] = value


def unset_value(config: Config, dotted: str) -> None:
    names, key = resolve(dotted)
    table = _table(config.document, names, create=False)
    if table is not None and key.name in table:
        del table[key.name]


def get_value(config: Config, dotted: str) -> Any:
    """The value in the document (edits included), else the schema's default."""
    names, key = resolve(dotted)
    table = _table(config.document, names, create=False)
    if table is None or key.name not in table:
        return key.default
    value = table[key.name]
    return value.unwrap() if hasattr(value, "unwrap") else value
