"""The commented appliance.toml written on first boot, generated from the schema."""

from __future__ import annotations

from typing import Any

import tomlkit

from appliance.config.schema import COLLECTIONS, SECTIONS, Key

HEADER = """\
# appliance.toml: every setting of this mail appliance.
# Edit it (or use `appliance config set`, `config setprop`, the console), then run
# `appliance apply` (or `signal-event email-update`). A bad value is refused with the
# key and the reason, and the running configuration stays in place.
"""


def _value(key: Key) -> str:
    return tomlkit.item(key.default).as_string()


def default_toml(hostname: str | None = None, domain: str | None = None,
                 overrides: dict[str, Any] | None = None) -> str:
    """The default file; `hostname`/`domain` and `overrides` ({"section.key": value}) seed
    it on first boot from the environment. Values are checked when the file is loaded."""
    overrides = {"system.hostname": hostname, "system.domain": domain, **(overrides or {})}
    out = [HEADER]
    for spec in SECTIONS:
        out.append(f"\n# {spec.doc}\n[{spec.path}]\n")
        for key in spec.keys:
            out.append(f"# {key.doc}. Allowed: {key.describe_allowed()}.\n")
            override = overrides.get(f"{spec.path}.{key.name}")
            value = (tomlkit.item(override).as_string() if override is not None
                     else _value(key))
            out.append(f"{key.name} = {value}\n")
    for coll in COLLECTIONS:
        out.append(f"\n# {coll.doc}\n")
        for key in coll.keys:
            out.append(f"#   {key.name}: {key.doc}\n")
    return "".join(out)
