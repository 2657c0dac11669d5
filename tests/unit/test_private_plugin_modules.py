"""A plugin's private helper modules (plugins/_name.py) are imported by plugins only:
what other code needs lives in a public smtpd module (mailauth, mime, dmarc)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "appliance" / "smtpd" / "plugins"
PRIVATE = "appliance.smtpd.plugins._"


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_module_outside_the_plugins_imports_a_private_plugin_module() -> None:
    outside = [p for folder in ("appliance", "console") for p in (ROOT / folder).rglob("*.py")
               if PLUGINS not in p.parents]
    assert len(outside) > 50  # the walk found the tree
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in imported(p)
                                                  if n.startswith(PRIVATE))
                 for p in outside}
    assert {p: n for p, n in offenders.items() if n} == {}


def test_the_probe_sees_a_private_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from appliance.smtpd.plugins._sqlite import Store\n")
    assert "appliance.smtpd.plugins._sqlite.Store" in imported(probe)
