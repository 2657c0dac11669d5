"""`appliance ban list|add|remove`: through the verb table, on a store of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import paths
from appliance.commands.table import main
from appliance.config.default import default_toml


@pytest.fixture
def volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    monkeypatch.setattr(paths, "BANS_DB", tmp_path / "bans.sqlite")
    paths.CONFIG.write_text(default_toml())
    return tmp_path


def ban(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["ban", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_and_remove(volume: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ban(capsys, "list") == (0, "no address is banned\n", "")
    assert ban(capsys, "add", "203.0.113.9", "--for", "2h")[:2] == (
        0, "203.0.113.9 banned for 2h\n")
    assert ban(capsys, "add", "198.51.100.0/24", "--reason", "spam run")[:2] == (
        0, "198.51.100.0/24 banned until removed\n")
    code, out, _ = ban(capsys, "list")
    assert code == 0
    header, first, second = out.splitlines()
    assert header.split()[:2] == ["ADDRESS", "EXPIRES"]
    assert first.startswith("198.51.100.0/24 ") and "never" in first and "spam run" in first
    assert second.startswith("203.0.113.9 ") and "(in 2h)" in second
    assert ban(capsys, "remove", "203.0.113.9")[:2] == (0, "ban lifted: 203.0.113.9\n")
    code, out, _ = ban(capsys, "remove", "203.0.113.9")
    assert code == 1 and "was not banned" in out


def test_bad_input_is_a_clear_error(volume: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ban(capsys, "add", "mail.example.com")
    assert code == 2 and "neither an IP address nor a network" in err
    code, _, err = ban(capsys, "add", "203.0.113.9", "--for", "forever")
    assert code == 2 and "not a duration" in err
    code, _, err = ban(capsys, "add", "127.0.0.1")
    assert code == 2 and "cannot be banned" in err
    code, _, err = ban(capsys, "remove")
    assert code == 2 and "which address" in err


def test_status_counts_the_bans_and_calls_a_banned_gateway_a_problem(
        volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.config import load
    from appliance.services import security
    from appliance.services.network.interfaces import Route

    monkeypatch.setattr(security, "default_routes",
                        lambda: [Route("default", "172.18.0.1", "eth0")])
    config = load(paths.CONFIG)
    assert security.Security().health(config).facts == ["bans: none"]
    store = security.open_store(config)
    store.add("203.0.113.9", 600)
    for i in range(31):
        store.failed(f"198.51.100.{i + 1}", "imap", "alice")
    health = security.Security().health(config)
    assert health.problems == []
    assert health.facts[0].startswith("bans: 1 address(es) banned")
    assert "account alice: 31 failed logins in the last hour" in health.facts[1]
    store.add("172.18.0.1", None)
    problems = security.Security().health(config).problems
    assert len(problems) == 1 and "the default gateway 172.18.0.1 is banned" in problems[0]
