"""The ban store on a real daemon: failures counted across connections, the failure
that bans answers 421 and hangs up, a banned address is refused at connect on every
port, and lifting the ban lets it in again."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from appliance.security.bans import BanStore
from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import CLIENT_HELO, PASSWORD, RawClient, port

BANNING = "[security]\nmax_failures = 3\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def session(daemon: object, tls: bool = True) -> tuple[RawClient, str]:
    c = await RawClient.connect(port(daemon), tls=tls)  # type: ignore[arg-type]
    greeting = (await c.reply())[0]
    if greeting.startswith("220 "):
        assert (await c.command(f"EHLO {CLIENT_HELO}")).startswith("250 ")
    return c, greeting


async def wrong_password(daemon: object) -> str:
    c, greeting = await session(daemon)
    assert greeting.startswith("220 "), greeting
    try:
        return await c.command("AUTH PLAIN " + b64("\0alice\0not the password"))
    finally:
        await c.close()


async def right_password_works(daemon: object) -> None:
    c, greeting = await session(daemon)
    try:
        assert greeting.startswith("220 ")
        assert await c.command("AUTH PLAIN " + b64("\0alice\0" + PASSWORD)) == \
            replies.AUTH_OK
    finally:
        await c.close()


def store_of(daemon: object) -> BanStore:
    bans = daemon.handler.state.bans  # type: ignore[attr-defined]
    assert bans is not None
    return bans


async def test_the_failure_that_bans_hangs_up_and_the_address_is_refused_at_connect(
    start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    smtps = await start_daemon("smtps", extra_toml=BANNING)
    assert await wrong_password(smtps) == replies.AUTH_FAILED
    assert await wrong_password(smtps) == replies.AUTH_FAILED
    third = await wrong_password(smtps)
    assert third == replies.AUTH_BANNED.format(ip="127.0.0.1", left="1h")

    c, greeting = await session(smtps)
    assert await c.closed_by_server()
    await c.close()
    assert greeting == replies.BANNED.format(ip="127.0.0.1", left="for 1h",
                                             reason="3 failed logins in 10m")
    assert any("127.0.0.1 banned for 1h: 3 failed logins in 10m (last user 'alice')"
               in r.getMessage() for r in caplog.records)
    assert any("127.0.0.1 refused: banned for 1h" in r.getMessage()
               for r in caplog.records)

    # the same store refuses it on port 25 too (another daemon, one file)
    smtp = await start_daemon("smtp", extra_toml=BANNING)
    state = smtp.handler.state  # type: ignore[attr-defined]
    state.bans = BanStore(store_of(smtps).path, state.settings.security)
    c, greeting = await session(smtp, tls=False)
    await c.close()
    assert greeting.startswith("421 4.7.0 127.0.0.1 is banned")

    assert store_of(smtps).remove("127.0.0.1") == ["127.0.0.1"]
    await right_password_works(smtps)


async def test_a_right_password_never_counts_and_local_networks_are_never_banned(
    start_daemon: StartDaemon
) -> None:
    daemon = await start_daemon("smtps", extra_toml=BANNING, local_networks=["127.0.0.0/8"])
    for _ in range(5):
        assert await wrong_password(daemon) == replies.AUTH_FAILED
    assert store_of(daemon).banned("127.0.0.1") is None
    # the account's failures are still counted
    assert store_of(daemon).accounts_under_attack() == []  # 5 is below 30


async def test_with_security_disabled_nothing_is_counted(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtps", extra_toml=BANNING + "enabled = false\n")
    assert daemon.handler.state.bans is None  # type: ignore[attr-defined]
    for _ in range(4):
        assert await wrong_password(daemon) == replies.AUTH_FAILED


async def test_a_broken_store_lets_logins_through(start_daemon: StartDaemon,
                                                  tmp_path: Path) -> None:
    daemon = await start_daemon("smtps", extra_toml=BANNING)
    state = daemon.handler.state  # type: ignore[attr-defined]
    state.bans = BanStore(tmp_path / "missing" / "bans.sqlite", state.settings.security)
    for _ in range(4):
        assert await wrong_password(daemon) == replies.AUTH_FAILED
    await right_password_works(daemon)


async def test_a_connection_opened_before_the_ban_is_refused_at_its_next_auth(
    start_daemon: StartDaemon
) -> None:
    smtps = await start_daemon("smtps", extra_toml=BANNING)
    early, greeting = await session(smtps)
    try:
        assert greeting.startswith("220 ")
        for _ in range(3):
            await wrong_password(smtps)
        answer = await early.command("AUTH PLAIN " + b64("\0alice\0" + PASSWORD))
        assert answer.startswith("421 4.7.0 127.0.0.1 is banned for 1h"), answer
        assert await early.closed_by_server()
    finally:
        await early.close()
