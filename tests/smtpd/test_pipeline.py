"""The plugin pipeline: first non-DECLINED verdict wins; a crashing plugin never accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.services import smtpd as render_smtpd
from appliance.smtpd import replies
from appliance.smtpd.dns import Resolver
from appliance.smtpd.handler import State
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.pipeline import Pipeline
from appliance.smtpd.plugins import BasePlugin, Context, PluginError, load
from appliance.smtpd.results import (
    DECLINED,
    Result,
    Verdict,
    deny,
    deny_disconnect,
    denysoft,
    ok,
)
from tests.smtpd.conftest import LoopbackDNS, StartDaemon
from tests.smtpd.support import (
    INTERNET,
    FakePostfix,
    RawClient,
    eventually,
    in_thread,
    port,
    send,
    toml_text,
)

CTX = Context(resolver=Resolver(["127.0.0.1"]), state_dir=Path("/nonexistent"))
DEFAULTS = render_smtpd.settings(config.parse(toml_text(INTERNET)))  # the schema's defaults


def conn() -> Connection:
    return Connection(daemon="smtp", remote_ip="192.0.2.1", remote_port=40000, local_port=25)


class Recorder(BasePlugin):
    """Answers `answer` in hook_rcpt and notes that it was asked."""

    calls: list[str]

    def __init__(self, name: str, answer: Result | None, calls: list[str]) -> None:
        self.name = name
        super().__init__({}, CTX)
        self.answer = answer
        self.calls = calls

    async def hook_rcpt(self, conn: Connection, txn: Transaction, rcpt: str) -> Result | None:
        self.calls.append(self.name)
        return self.answer


class Crash(BasePlugin):
    name = "crash"

    def __init__(self, settings: dict[str, Any], hook: str = "rcpt") -> None:
        super().__init__(settings, CTX)
        self.crash_in = hook

    async def _maybe(self, hook: str) -> None:
        if hook == self.crash_in:
            raise RuntimeError(f"boom in {hook}")

    async def hook_connect(self, conn: Connection) -> None:
        await self._maybe("connect")

    async def hook_rcpt(self, conn: Connection, txn: Transaction, rcpt: str) -> None:
        await self._maybe("rcpt")

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> None:
        await self._maybe("data_post")


class AcceptAll(BasePlugin):
    name = "accept_all"

    async def hook_rcpt(self, conn: Connection, txn: Transaction, rcpt: str) -> Result:
        return ok()


async def test_first_non_declined_verdict_wins_and_later_plugins_are_not_asked() -> None:
    calls: list[str] = []
    pipeline = Pipeline([
        Recorder("none", None, calls),
        Recorder("declined", DECLINED, calls),
        Recorder("denier", deny("550 5.7.1 first word"), calls),
        Recorder("accepter", ok(), calls),
    ])

    result = await pipeline.run("rcpt", conn(), Transaction(), "a@example.com")

    assert result == Result(Verdict.DENY, "550 5.7.1 first word", "denier")
    assert calls == ["none", "declined", "denier"]


async def test_ok_wins_over_a_later_deny() -> None:
    calls: list[str] = []
    pipeline = Pipeline([Recorder("accepter", ok(), calls),
                         Recorder("denier", denysoft("451 4.7.1 no"), calls)])

    result = await pipeline.run("rcpt", conn(), Transaction(), "a@example.com")

    assert (result.verdict, result.plugin) == (Verdict.OK, "accepter")
    assert calls == ["accepter"]


async def test_all_declined_is_declined_and_unused_hooks_are_empty() -> None:
    calls: list[str] = []
    pipeline = Pipeline([Recorder("a", None, calls), Recorder("b", DECLINED, calls)])

    assert await pipeline.run("rcpt", conn(), Transaction(), "x@y") is DECLINED
    assert await pipeline.run("mail", conn(), Transaction(), "x@y") is DECLINED
    assert calls == ["a", "b"]


async def test_plugin_raising_in_hook_rcpt_gives_451_never_acceptance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    pipeline = Pipeline([Crash({}), Recorder("accepter", ok(), calls)])

    result = await pipeline.run("rcpt", conn(), Transaction(), "a@example.com")

    assert result == Result(Verdict.DENYSOFT, replies.PLUGIN_FAILED, "crash")
    assert result.rejects
    assert calls == []  # the crash decided: nobody after it can accept
    assert "plugin crash crashed in hook_rcpt" in caplog.text
    assert "boom in rcpt" in caplog.text  # the traceback is logged


def test_unknown_plugin_and_bad_setting_are_refused_at_load() -> None:
    with pytest.raises(PluginError, match="unknown plugin"):
        load("no_such_plugin", {}, CTX)
    bad = DEFAULTS.replace(local_networks=("not/a/net",))
    with pytest.raises(PluginError, match="bad network"):
        load("relay", bad, CTX)


class Marker(BasePlugin):
    """Marks the connection naughty in hook_connect (like dnsbl with reject naughty)."""

    name = "marker"

    async def hook_connect(self, conn: Connection) -> Result:
        from appliance.smtpd.results import naughty

        return naughty("550 5.7.1 Listed")


async def test_naughty_marks_and_goes_on_without_the_naughty_plugin_it_denies_at_once(
) -> None:
    c = conn()
    later: list[str] = []
    with_naughty = Pipeline([Marker({}, CTX), load("naughty", DEFAULTS, CTX)])
    assert (await with_naughty.run("connect", c)).verdict is Verdict.DECLINED
    assert c.naughty == ("550 5.7.1 Listed", "marker") and c.karma == -1
    result = await with_naughty.run("mail", c, Transaction(sender="x@example.net"), "x")
    assert result.verdict is Verdict.DENY and result.reply == "550 5.7.1 Listed"
    del later
    alone = Pipeline([Marker({}, CTX)])
    result = await alone.run("connect", conn())
    assert result.verdict is Verdict.DENY and result.plugin == "marker"


async def test_time_per_plugin_is_added_up_on_the_connection() -> None:
    c = conn()
    calls: list[str] = []
    pipeline = Pipeline([Recorder("a", None, calls), Recorder("b", ok(), calls)])
    await pipeline.run("rcpt", c, Transaction(), "x@example.com")
    first = dict(c.timings)
    await pipeline.run("rcpt", c, Transaction(), "y@example.com")
    assert set(c.timings) == {"a", "b"}
    assert all(c.timings[name] > first[name] > 0 for name in ("a", "b"))  # summed per run


class FixedPipelines:
    """Every peer gets the same chain."""

    def __init__(self, plugins: list[BasePlugin]) -> None:
        self.pipeline = Pipeline(plugins)
        self.ctx = Context(resolver=LoopbackDNS(), state_dir=Path("/nonexistent"))

    def peer_of(self, ip: str) -> str:
        return "internet"

    def for_peer(self, peer: str) -> Pipeline:
        return self.pipeline

    def close(self) -> None:
        pass


def _install(daemon: Any, plugins: list[BasePlugin]) -> None:
    """Swap the running daemon's chains (new connections use them)."""
    old = daemon.handler.state
    daemon.handler.state = State(settings=old.settings,
                                 pipelines=FixedPipelines(plugins),  # type: ignore[arg-type]
                                 passwords=old.passwords, bans=old.bans)


async def test_daemon_answers_451_when_a_plugin_crashes_in_rcpt(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    _install(daemon, [Crash({}, "rcpt"), AcceptAll({}, CTX)])

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])

    assert out.rcpts == [replies.PLUGIN_FAILED]
    assert out.data is None
    assert fake_postfix.messages == []


async def test_daemon_answers_451_when_a_plugin_crashes_after_data(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    _install(daemon, [Crash({}, "data_post"), AcceptAll({}, CTX)])

    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])

    assert out.rcpts == [replies.OK_RECIPIENT]
    assert out.data == replies.PLUGIN_FAILED
    assert fake_postfix.messages == []


async def test_daemon_refuses_the_connection_when_a_connect_hook_crashes(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    _install(daemon, [Crash({}, "connect"), AcceptAll({}, CTX)])

    c = await RawClient.connect(port(daemon))
    try:
        assert await c.read_line() == replies.PLUGIN_FAILED  # instead of the greeting
        assert await c.closed_by_server()
    finally:
        await c.close()


async def test_deny_disconnect_in_rcpt_replies_then_hangs_up(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp")
    goodbye = "550 5.7.1 Go away"
    _install(daemon, [Recorder("bouncer", deny_disconnect(goodbye), [])])

    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        await c.send(b"EHLO client.example.org\r\n")
        await c.reply()
        await c.command("MAIL FROM:<sender@example.net>")
        assert await c.command("RCPT TO:<alice@example.com>") == goodbye
        assert await c.closed_by_server()
    finally:
        await c.close()
    await eventually(lambda: daemon.limits.total == 0, what="the slot to be released")
