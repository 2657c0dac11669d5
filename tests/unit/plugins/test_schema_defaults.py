"""A plugin left at its defaults runs with the schema's defaults.

The plugins used to carry fallbacks of their own for keys the settings file might lack;
several differed from the schema (a tag level of 5.0 against 4.0, no DNS list zones, no
bad HELO names, no blocked attachment names). The file always has every key now, so each
case here checks the value a default appliance.toml gives the plugin.
"""

from __future__ import annotations

from appliance.config import parse
from appliance.config.schema import (
    EXECUTABLE_PATTERNS,
    PLUGIN_SECTIONS,
    RBL_LIST,
    SBL_LIST,
    SECTIONS,
    SPAM_SENSITIVITY,
    UBL_LIST,
)
from appliance.services.smtpd import settings as smtpd_settings


def default(section: str, key: str) -> object:
    found = next(s for s in SECTIONS + PLUGIN_SECTIONS if s.path == section).key(key)
    assert found is not None
    return found.default


def test_spamassassin_tags_at_the_level_of_the_default_sensitivity(make_plugin) -> None:
    # was 5.0 in the plugin: medium's level (SME's table), which is what the schema's
    # default sensitivity gives; the plugin's own number is gone
    assert default("spamassassin", "sensitivity") == "medium"
    assert make_plugin("spamassassin").tag_level == float(SPAM_SENSITIVITY["medium"])
    assert make_plugin("spamassassin").reject_level is None  # SME: only custom rejects


def test_spamassassin_custom_sensitivity_uses_the_schema_tag_level(make_plugin) -> None:
    custom = smtpd_settings(parse('[spamassassin]\nsensitivity = "custom"\n'))
    plugin = make_plugin("spamassassin", settings=custom)
    assert plugin.tag_level == default("spamassassin", "tag_level") == 4.0
    assert plugin.reject_level == default("spamassassin", "reject_level") == 12.0


def test_helo_refuses_the_schema_bad_helo_names(make_plugin) -> None:
    # was [] in the plugin
    plugin = make_plugin("helo")
    assert default("smtpd.helo", "bad_helo") == ["aol.com", "yahoo.com"]
    assert plugin.bad_helo is not None and plugin.bad_helo.fullmatch("yahoo.com")


def test_dns_lists_look_up_the_schema_zones_once_enabled(make_plugin) -> None:
    # were [] in the plugins: enabling one without naming zones looked up nothing
    assert [z for z, _ in make_plugin("dnsbl", enabled=True).zones] == [
        z.split(":")[0] for z in RBL_LIST]
    assert [z for z, _ in make_plugin("rhsbl", enabled=True).zones] == SBL_LIST
    assert [z for z, _ in make_plugin("uribl", enabled=True).zones] == [
        z.split(":")[0] for z in UBL_LIST]


def test_pattern_filter_blocks_the_schema_executable_types(make_plugin) -> None:
    # was [] in the plugin
    plugin = make_plugin("pattern_filter", enabled=True)
    assert "*.exe" in EXECUTABLE_PATTERNS
    assert plugin.pattern is not None and plugin.pattern.fullmatch("invoice.exe")
    assert not plugin.pattern.fullmatch("invoice.zip")
