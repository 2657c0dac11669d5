"""`appliance config show`: every setting, and never a password."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

from appliance import cli, paths
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
    assert cli.cmd_config_show(config, None) == 0
    shown = capsys.readouterr().out
    assert "S3cret" not in shown
    assert 'smarthost_password = "(set)"' in shown
    assert 'smarthost = "smtp.example.net:587"' in shown  # the rest as it is
