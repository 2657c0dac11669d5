"""SIGHUP: Daemon.reload() re-reads the settings file without dropping anything."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from appliance.smtpd import main, replies
from appliance.smtpd.auth import hash_password
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import QUEUE_ID, FakePostfix, RawClient, in_thread, port, send

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where reload() reads from. read_settings()'s default path is bound when main.py is
    imported (from appliance.paths.SMTPD_CONFIG), so point the default itself here."""
    path = tmp_path / "smtpd.json"
    monkeypatch.setattr(main.read_settings, "__defaults__", (path,))
    return path


async def test_reload_accepts_a_newly_added_user_on_the_running_daemon(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, settings_file: Path
) -> None:
    daemon = await start_daemon("smtp")
    server = daemon.server
    unknown = replies.USER_UNKNOWN.format(address="carol@example.com")
    before = await in_thread(send, port(daemon), "sender@example.net", ["carol@example.com"])
    assert before.rcpts == [unknown]

    # A session open across the reload keeps working.
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        new = copy.deepcopy(daemon.settings)
        new["users"]["carol"] = hash_password("carol's password", rounds=4)
        new["addresses"]["carol@example.com"] = ["carol@example.com"]
        settings_file.write_text(json.dumps(new), encoding="utf-8")

        daemon.reload()

        assert daemon.server is server and server.is_serving()
        assert "carol" in daemon.handler.state.settings["users"]
        assert await c.command("NOOP") == "250 OK"
        await c.command("QUIT")
    finally:
        await c.close()

    after = await in_thread(send, port(daemon), "sender@example.net", ["carol@example.com"])

    assert after.rcpts == [replies.OK_RECIPIENT]
    assert after.data == QUEUED
    [got] = fake_postfix.messages
    assert got.rcpt_tos == ["carol@example.com"]


async def test_reload_removing_a_user_refuses_them_afterwards(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, settings_file: Path
) -> None:
    daemon = await start_daemon("smtp")
    new = copy.deepcopy(daemon.settings)
    del new["users"]["bob"]
    del new["addresses"]["bob@example.com"]
    settings_file.write_text(json.dumps(new), encoding="utf-8")

    daemon.reload()
    out = await in_thread(send, port(daemon), "sender@example.net", ["bob@example.com"])

    assert out.rcpts == [replies.USER_UNKNOWN.format(address="bob@example.com")]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="bad-json"),
        pytest.param(None, id="missing-file"),
        pytest.param("unknown-plugin", id="bad-plugin"),
    ],
)
async def test_failed_reload_keeps_the_running_settings(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, settings_file: Path,
    content: str | None,
) -> None:
    daemon = await start_daemon("smtp")
    state, settings = daemon.handler.state, daemon.settings
    if content == "unknown-plugin":
        bad = copy.deepcopy(daemon.settings)
        bad["plugin_settings"]["relay"]["relay_clients"] = ["not-a-network"]
        bad["users"] = {}
        settings_file.write_text(json.dumps(bad), encoding="utf-8")
    elif content is not None:
        settings_file.write_text(content, encoding="utf-8")

    daemon.reload()

    assert daemon.handler.state is state and daemon.settings is settings
    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])
    assert out.data == QUEUED
