"""The SMTP daemons' settings file as a typed contract (appliance.smtpd.settings).

The renderer and the daemons build it with one constructor; a file the daemons would not
take (edited by hand, from another version) fails at load with the key's name.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from appliance.config import parse
from appliance.config.default import default_toml
from appliance.config.schema import PLUGIN_SECTIONS
from appliance.services import smtpd as render_smtpd
from appliance.smtpd import main
from appliance.smtpd.settings import (
    PluginError,
    Settings,
    SettingsError,
    from_dict,
    from_json,
)

TOML = """
[network]
mtu = 1492
[users.alice]
full_name = "Alice"
send_as = ["sales@example.com"]
[users.bob]
visible = "internal"
[groups.sales]
members = ["alice", "bob"]
[domains."example.org"]
disclaimer = "Sent from example.org"
dkim_signing = false
[domains."delegated.example"]
mail_server = "192.0.2.25"
[spamassassin]
sensitivity = "custom"
reject_level = 9
whitelist = ["*@partner.example"]
"""


def rendered(text: str = TOML) -> Settings:
    return render_smtpd.settings(parse(text))


def json_form(text: str = TOML) -> dict[str, Any]:
    return copy.deepcopy(rendered(text).to_dict())


# -- the round trip ---------------------------------------------------------------------


@pytest.mark.parametrize("text", [default_toml(), TOML], ids=["defaults", "accounts"])
def test_render_json_load_gives_equal_settings(text: str) -> None:
    settings = rendered(text)
    files = render_smtpd.render(parse(text))
    [smtpd_json] = files
    loaded = from_json(smtpd_json.text)
    assert loaded == settings
    assert loaded.to_json() == smtpd_json.text  # and writes the same file again


def test_the_loaded_values_are_typed_and_resolved() -> None:
    s = rendered()
    assert s.daemons["smtp"].tcp_maxseg == 1452
    assert s.domains["example.org"].dkim_signing is False
    assert s.delegated_domains == {"delegated.example": "192.0.2.25"}
    assert s.send_as == {"alice": ("sales@example.com",)}
    assert "*@partner.example" in s.plugin_settings.whitelists.senders
    assert s.plugin_settings.spamassassin.reject_level == 9.0
    assert isinstance(s.local_networks, tuple)


def test_each_plugin_section_has_exactly_its_schema_keys() -> None:
    """The dataclasses name their keys once more than the schema does (as fields, without
    defaults): this keeps the two from drifting apart."""
    kinds = {str: str, int: int, bool: bool, list: tuple}
    plugins = rendered(default_toml()).plugin_settings
    for section in PLUGIN_SECTIONS:
        name = section.path.split(".", 1)[1]
        values = getattr(plugins, name)
        assert sorted(f.name for f in dataclasses.fields(values)) == sorted(
            k.name for k in section.keys), name
        for key in section.keys:
            assert isinstance(getattr(values, key.name), kinds[key.kind]), (name, key.name)


def test_a_plugin_without_an_enabled_key_always_runs() -> None:
    plugins = rendered().plugin_settings
    assert plugins.enabled("naughty") and plugins.enabled("rcpt_ok")
    assert not plugins.enabled("karma")  # off by default, as in SME


# -- a bad file fails at load, naming the key -------------------------------------------


def _node(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for part in path:
        data = data[part]
    return data


def _without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    del _node(data, path[:-1])[path[-1]]
    return data


def _with(data: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    _node(data, path[:-1])[path[-1]] = value
    return data


@pytest.mark.parametrize("key", ["max_recipients", "handoff.port", "daemons.smtps.port",
                                 "tls.report_dir", "plugin_settings.karma.strikes",
                                 "plugin_settings.spamassassin.socket"])
def test_a_missing_key_fails_with_its_name(key: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{key}: missing"):
        from_dict(_without(json_form(), *key.split(".")))


@pytest.mark.parametrize(("path", "value"), [
    (("timeout",), "120"), (("max_recipients",), True), (("handoff", "port"), 10025.5),
    (("daemons", "smtp", "tls_before_auth"), "yes"), (("local_networks",), "127.0.0.0/8"),
    (("addresses", "alice@example.com"), "alice@example.com"), (("users",), ["alice"]),
    (("domains", "example.org", "dkim_signing"), 0),
    (("plugin_settings", "helo", "bad_helo"), [1]),
])
def test_a_wrongly_typed_key_fails_with_its_name(path: tuple[str, ...], value: Any) -> None:
    key = ".".join(path)
    with pytest.raises(SettingsError, match=r"must be") as e:
        from_dict(_with(json_form(), value, *path))
    assert key in str(e.value)


def test_an_unknown_key_is_refused_as_from_another_version() -> None:
    with pytest.raises(SettingsError, match="plugin_settings.karma.mood: unknown key"):
        from_dict(_with(json_form(), 1, "plugin_settings", "karma", "mood"))
    with pytest.raises(SettingsError, match="^queue_size: unknown key"):
        from_dict(_with(json_form(), 1, "queue_size"))


def test_a_plugin_value_the_schema_refuses_is_a_plugin_error_naming_the_key() -> None:
    with pytest.raises(PluginError, match=r"earlytalker: check_at = 'rcpt'.*connect"):
        from_dict(_with(json_form(), "rcpt", "plugin_settings", "earlytalker", "check_at"))
    with pytest.raises(PluginError, match=r"plugin_settings.karma.strikes"):
        from_dict(_with(json_form(), 0, "plugin_settings", "karma", "strikes"))


def test_the_daemons_must_be_the_three() -> None:
    with pytest.raises(SettingsError, match="daemons: must have exactly smtp, smtps"):
        from_dict(_without(json_form(), "daemons", "submission"))


def test_not_json_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="not JSON"):
        from_json("{not json")


def test_build_state_raises_with_the_key_and_builds_nothing() -> None:
    bad = _with(json_form(), "no", "plugin_settings", "relay", "require_auth")
    with pytest.raises(SettingsError, match="plugin_settings.relay.require_auth"):
        main.build_state(bad)
    assert main.build_state(json_form()).settings == rendered()


def test_a_daemon_does_not_start_on_a_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "smtpd.json"
    path.write_text(json.dumps(_without(json_form(), "run_as")), encoding="utf-8")
    monkeypatch.setattr(main.read_settings, "__defaults__", (path,))
    started: list[str] = []
    monkeypatch.setattr(main, "serve", lambda name: started.append(name))
    with caplog.at_level(logging.ERROR, "appliance.smtpd"):
        assert main.main("smtp") == 1
    assert started == []
    assert "run_as: missing" in caplog.text
