"""docs/settings.md and docs/plugins.md are generated: they must match the code."""

from __future__ import annotations

from pathlib import Path

from appliance.commands.docs import plugins_reference, settings_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_settings_reference_is_up_to_date() -> None:
    assert (DOCS / "settings.md").read_text() == settings_reference(), "run `make docs`"


def test_plugins_reference_is_up_to_date_and_lists_every_plugin() -> None:
    text = plugins_reference()
    assert (DOCS / "plugins.md").read_text() == text, "run `make docs`"
    for name in ("dnsbl", "karma", "dkim_sign", "check_goodrcptto", "rcpt_ok"):
        assert f"## {name}\n" in text
