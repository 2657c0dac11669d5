"""Which settings are secrets is declared once, on the schema's Key (secret=True), and
`appliance config show` and SME's `config show` read it, where they used to guess from
the name ("password" in the key, "Passw" in SME's property)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomlkit

from appliance import paths
from appliance.commands import sme
from appliance.commands.config import show as config_show
from appliance.config import load
from appliance.config.default import default_toml
from appliance.config.edit import set_value
from appliance.config.schema import COLLECTIONS, SECTIONS, find_key
from appliance.smtpd.auth import hash_password

# A value for every secret key, to prove none is shown. A key newly declared secret
# needs one here (the first test says so).
SECRETS = {
    "delivery.smarthost_password": "S3cret-relay",
    "fetchmail.password": "S3cret-pop",
    "users.alice.password": hash_password("S3cret-user", 4),
    # a list: its one item
    "users.alice.app_passwords": f"phone 2025-01-31T12:00:00Z {hash_password('S3cret-app', 4)}",
}
# Settings about passwords that are not secrets: the old console guess ("password" in
# the key) would have masked them.
NOT_SECRET = {"system.password_strength", "system.password_min_length"}


def declared_secret() -> set[str]:
    keys = {f"{s.path}.{k.name}" for s in SECTIONS for k in s.keys if k.secret}
    return keys | {f"{c.path}.alice.{k.name}" for c in COLLECTIONS for k in c.keys
                   if k.secret}


def test_every_key_the_name_guess_took_for_a_password_is_declared_secret() -> None:
    guessed = {f"{s.path}.{k.name}" for s in SECTIONS for k in s.keys
               if "password" in k.name}
    guessed |= {f"{c.path}.alice.{k.name}" for c in COLLECTIONS for k in c.keys
                if "password" in k.name}
    assert guessed - NOT_SECRET <= declared_secret()
    assert declared_secret() == set(SECRETS)
    for dotted in NOT_SECRET:
        found = find_key(dotted)
        assert found is not None and not found[1].secret, dotted


def test_every_sme_property_the_name_guess_hid_is_a_secret_key() -> None:
    guessed = [prop.path("alice") for props in (*sme.CONFIGURATION.values(),
                                                *sme.ACCOUNTS.values())
               for name, prop in props.items() if "Passw" in name]
    assert sorted(guessed) == ["delivery.smarthost_password", "fetchmail.password"]
    for dotted in guessed:
        found = find_key(dotted)
        assert found is not None and found[1].secret, dotted


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every secret set, in a default appliance.toml."""
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    paths.CONFIG.write_text(default_toml() + "[users.alice]\n")
    config = load(paths.CONFIG)
    set_value(config, "delivery.smarthost", ["smtp.example.net:587"])
    for dotted, value in SECRETS.items():
        set_value(config, dotted, [value])
    paths.CONFIG.write_text(tomlkit.dumps(config.document))
    return paths.CONFIG


def test_config_show_hides_every_secret_key(toml: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = load(toml)
    def value(dotted: str) -> object:
        got = config.get(dotted.rpartition(".")[0])[dotted.rpartition(".")[2]]
        return got[0] if isinstance(got, list) else got

    assert {d: value(d) for d in SECRETS} == SECRETS  # they are set
    assert config_show(config, None) == 0
    shown = capsys.readouterr().out
    for value in SECRETS.values():
        assert value not in shown
    assert len(re.findall(r'passwords? = "\(set\)"', shown)) == len(SECRETS)
    assert 'password_strength = "strong"' in shown  # a setting, not a secret


def test_sme_config_show_hides_every_secret_property(toml: Path) -> None:
    out: list[str] = []
    sme.run_db("configuration", ["show"], out.append)
    shown = "".join(out)
    for value in SECRETS.values():
        assert value not in shown
    assert "    SecondaryMailPassword=(set)\n" in shown
    assert "    Passwd=(set)\n" in shown
    assert "    Users=strong\n" in shown  # passwordstrength: a setting, shown
    out.clear()
    sme.run_db("configuration", ["getprop", "SMTPAUTHPROXY", "Passwd"], out.append)
    assert out == ["S3cret-relay\n"]  # asked for by name, as on SME
