"""`appliance config show`: every setting, and never a password."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

from appliance import paths
from appliance.commands.config import show as config_show
from appliance.config import load
from appliance.config.default import default_toml
from appliance.config.edit import set_value


def test_config_show_never_prints_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    paths.CONFIG.write_text(default_toml())
    config = load(paths.CONFIG)
    set_value(config, "delivery.smarthost", ["smtp.example.net:587"])
    set_value(config, "delivery.smarthost_password", ["S3cret-relay"])
    set_value(config, "fetchmail.password", ["S3cret-pop"])
    paths.CONFIG.write_text(tomlkit.dumps(config.document))
    config = load(paths.CONFIG)
    assert config.data["delivery"]["smarthost_password"] == "S3cret-relay"
    assert config_show(config, None) == 0
    shown = capsys.readouterr().out
    assert "S3cret" not in shown
    assert 'smarthost_password = "(set)"' in shown
    assert 'smarthost = "smtp.example.net:587"' in shown  # the rest as it is


def test_config_show_is_toml_that_reads_back_with_every_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each section once, under its full header (no bare [smtp]); the values round-trip,
    passwords aside, which read back as the string "(set)"."""
    import tomllib

    from appliance.config import parse

    config = parse(default_toml() + '[users.alice]\nfull_name = "Alice"\n'
                   '[domains."example.org"]\nmail_server = "192.0.2.7"\n'
                   '[users.bob]\n[pseudonyms."info@example.org"]\naccount = "bob"\n')
    assert config_show(config, None) == 0
    shown = capsys.readouterr().out
    back = tomllib.loads(shown)
    assert shown.count("[smtpd.smtp]") == 1 and "\n[smtp]" not in shown
    assert "[domains.\"example.org\"]" in shown
    for top, values in config.data.items():
        got = back.get(top, {})  # an empty collection prints nothing
        if top in ("users", "groups", "pseudonyms", "domains"):
            assert set(got) == set(values)
            continue
        stack = [(values, got)]
        while stack:
            want, have = stack.pop()
            for k, v in want.items():
                if isinstance(v, dict):
                    stack.append((v, have[k]))
                elif (k == "password" or k.endswith("_password")) and v:
                    assert have[k] == "(set)"
                else:
                    assert have[k] == v, (top, k)
    assert back["pseudonyms"]["info@example.org"] == config.data["pseudonyms"][
        "info@example.org"]
    assert back["system"]["password_strength"] == "strong"  # a setting, not a secret
    # a section alone is valid too
    assert config_show(config, "smtpd") == 0
    assert set(tomllib.loads(capsys.readouterr().out)["smtpd"]) >= {"smtp", "dnsbl"}
