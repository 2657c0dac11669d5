"""`appliance config get|set|unset`: one setting by dotted name, comments kept."""

from __future__ import annotations

import pytest
import tomlkit

from appliance.config import ConfigError, parse
from appliance.config.default import default_toml
from appliance.config.edit import get_value, set_value, unset_value


def test_set_converts_by_the_schema_and_keeps_comments() -> None:
    config = parse(default_toml() + "\n# mine\n")
    set_value(config, "smtpd.dnsbl.enabled", ["enabled"])  # SME's word
    set_value(config, "smtpd.dnsbl.zones", ["a.test,b.test:Blocked %IP%"])
    set_value(config, "smtpd.karma.negative", ["3"])
    text = tomlkit.dumps(config.document)
    new = parse(text)
    assert new.data["smtpd"]["dnsbl"]["enabled"] is True
    assert new.data["smtpd"]["dnsbl"]["zones"] == ["a.test", "b.test:Blocked %IP%"]
    assert get_value(new, "smtpd.karma.negative") == 3
    assert "# mine" in text


def test_collection_entries_with_dots_in_their_names() -> None:
    config = parse(default_toml())
    set_value(config, "domains.branch.example.mail_server", ["192.0.2.25"])
    new = parse(tomlkit.dumps(config.document))
    assert new.delegated_domains == {"branch.example": "192.0.2.25"}
    unset_value(new, "domains.branch.example.mail_server")
    assert parse(tomlkit.dumps(new.document)).delegated_domains == {}


@pytest.mark.parametrize("key,values,match", [
    ("smtpd.nosuch.key", ["1"], "no such setting"),
    ("smtpd.karma.negative", ["two"], "integer"),
    ("smtpd.dnsbl.enabled", ["maybe"], "true or false"),
])
def test_bad_names_and_values_are_refused(key: str, values: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        set_value(parse(default_toml()), key, values)


def test_group_members_must_exist() -> None:
    with pytest.raises(ConfigError, match="no such user"):
        parse(default_toml() + '\n[groups.team]\nmembers = ["ghost"]\n')
