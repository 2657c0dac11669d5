"""`appliance config get|set|unset KEY [VALUE...]` and `appliance config show [SECTION]`.

get prints one setting as toml (a password too: asked for by name); set and unset change
one setting and apply it at once (--dry-run: the diff only); show prints every setting
with its effective value, defaults included, and never a secret (Key.secret).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import tomlkit

from appliance.commands import base
from appliance.config import Config, ConfigError


def run(args: argparse.Namespace) -> int:
    from appliance.config import edit

    config = base.load_config()
    if args.action == "show":
        return show(config, args.key)
    if not args.key:
        raise ConfigError(f"`appliance config {args.action}` needs a key")
    if args.action == "get":
        value = edit.get_value(config, args.key)
        print(tomlkit.item(value).as_string())
        return 0
    if args.action == "set":
        if not args.values:
            raise ConfigError("set needs a value", key=args.key)
        edit.set_value(config, args.key, args.values)
    else:
        edit.unset_value(config, args.key)
    base.commit(config, dry_run=args.dry_run)
    return 0


def show(config: Config, section: str | None) -> int:
    """Every setting with its effective value (defaults included), as toml."""
    from appliance.config.schema import COLLECTIONS, SECTIONS, Collection, Section

    def wanted(path: str) -> bool:
        return not section or path == section or path.startswith(section + ".")

    def hidden(spec: Section | Collection, values: dict[str, Any]) -> dict[str, Any]:
        """A password (the smarthost's, fetchmail's, a user's hash: Key.secret) is never
        printed: `config get KEY` shows one on purpose. Sub-tables ([smtpd] holds
        [smtpd.smtp]) are printed under their own header."""
        def secret(name: str) -> bool:
            key = spec.key(name)
            return key is not None and key.secret

        return {k: "(set)" if v and secret(k) else v
                for k, v in values.items() if not isinstance(v, dict)}

    text = ""
    for spec in SECTIONS:
        if wanted(spec.path):
            header = ".".join(tomlkit.key(p).as_string() for p in spec.path.split("."))
            text += f"[{header}]\n{tomlkit.dumps(hidden(spec, config.get(spec.path)))}\n"
    for coll in COLLECTIONS:
        if not wanted(coll.path):
            continue
        for name, entry in sorted(config.data[coll.path].items()):
            entry = hidden(coll, entry)
            text += f"[{coll.path}.{tomlkit.key(name).as_string()}]\n{tomlkit.dumps(entry)}\n"
    if not text:
        raise ConfigError("no such section (see docs/settings.md)", key=section)
    sys.stdout.write(text)
    return 0
