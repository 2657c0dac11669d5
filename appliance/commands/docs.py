"""Generated reference documents: every setting and every plugin, from the schema.

`make docs` (python -m appliance.commands.docs) writes docs/settings.md and
docs/plugins.md; a unit test fails when they are out of date, so the documents never
drift from the code.
"""

from __future__ import annotations

import importlib
from typing import Any

from appliance.config.schema import COLLECTIONS, PLUGIN_SECTIONS, SECTIONS, Key
from appliance.smtpd import peers
from appliance.smtpd.plugins import available

PEER_WORDS = {peers.INTERNET: "internet", peers.LOCAL: "local networks",
              peers.AUTHENTICATED: "authenticated, 465, 587"}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _key_rows(path: str, keys: tuple[Key, ...]) -> list[str]:
    rows = ["| key | default | allowed | what it does |", "| --- | --- | --- | --- |"]
    for k in keys:
        doc = k.doc.replace("|", "\\|")
        allowed = k.describe_allowed().replace("|", "\\|")
        rows.append(f"| `{path}.{k.name}` | `{_value(k.default)}` | {allowed} | {doc} |")
    return rows


def settings_reference() -> str:
    out = ["# appliance.toml reference", "",
           "Generated from `appliance/config/schema.py` by `make docs`; do not edit.",
           "Change a setting with `appliance config set KEY VALUE` (applied at once) or edit",
           "the file and run `appliance apply`. Plugin settings are in "
           "[plugins.md](plugins.md).", ""]
    for s in SECTIONS:
        if s in PLUGIN_SECTIONS:
            continue
        out += [f"## [{s.path}]", "", s.doc, "", *_key_rows(s.path, s.keys), ""]
    for c in COLLECTIONS:
        out += [f"## [{c.path}.NAME]", "", c.doc, f"NAME: {c.name_allowed}.", "",
                *_key_rows(f"{c.path}.NAME", c.keys), ""]
    return "\n".join(out)


def _summary(name: str) -> str:
    doc = importlib.import_module(f"appliance.smtpd.plugins.{name}").__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def plugins_reference() -> str:
    out = ["# SMTP plugins reference", "",
           "Generated from `appliance/smtpd/peers.py`, the plugin modules and the schema by",
           "`make docs`; do not edit.", "",
           "The plugins run in this order (SME Server's qpsmtpd order). Each runs only for",
           "the peers listed: *internet* is port 25 from outside `network.local_networks`,",
           "*local networks* is port 25 from inside, *authenticated* is after AUTH on any",
           "port and everything on 465/587. The first plugin with a verdict decides.", "",
           "| # | plugin | runs for | on by default |", "| --- | --- | --- | --- |"]
    sections = {s.path.split(".", 1)[1]: s for s in PLUGIN_SECTIONS}
    for i, (name, where) in enumerate(peers.TABLE, 1):
        section = sections.get(name)
        on = section.key("enabled") if section else None
        default = "yes" if on is None or on.default else "no"
        out.append(f"| {i} | [{name}](#{name}) | {', '.join(PEER_WORDS[p] for p in where)} "
                   f"| {default} |")
    out.append("")
    for name, _ in peers.TABLE:
        out += [f"## {name}", "", _summary(name), ""]
        section = sections.get(name)
        if section is not None:
            out += [*_key_rows(section.path, section.keys), ""]
        else:
            out += ["No settings of its own.", ""]
    missing = sorted(set(available()) - {n for n, _ in peers.TABLE})
    assert not missing, f"plugins not in peers.TABLE: {missing}"
    return "\n".join(out)


def main() -> int:
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"  # the checkout's docs/
    docs.mkdir(exist_ok=True)
    (docs / "settings.md").write_text(settings_reference())
    (docs / "plugins.md").write_text(plugins_reference())
    print(f"wrote {docs}/settings.md and {docs}/plugins.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
