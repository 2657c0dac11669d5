"""send_limits: messages per user and hour (a sliding hour, all daemons together), the
per-user override, and the recipients-per-message cap the daemon applies at RCPT."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from appliance.smtpd import replies
from appliance.smtpd.handler import State
from appliance.smtpd.results import Verdict
from appliance.smtpd.settings import from_dict


@pytest.fixture
def limited(base_settings: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(base_settings)
    s["user_limits"]["alice"] = {"messages_per_hour": 3, "recipients_per_message": 2}
    return s


@pytest.fixture
def plugin(make_plugin, limited, clock):  # noqa: ANN001, ANN201
    p = make_plugin("send_limits", settings=limited)
    p.clock = clock
    return p


async def send(plugin, conn, txn, user: str = "alice"):  # noqa: ANN001, ANN201
    c, t = conn(daemon="submission", auth_user=user), txn(sender=f"{user}@example.com")
    result = await plugin.hook_mail(c, t, t.sender)
    if result is None:
        await plugin.hook_queue(c, t)
    return result


async def test_past_the_hourly_limit_mail_is_deferred_until_the_hour_has_room(
        plugin, conn, txn, clock) -> None:  # noqa: ANN001
    for _ in range(3):
        assert await send(plugin, conn, txn) is None
        clock.now += 600
    refused = await send(plugin, conn, txn)
    assert refused is not None and refused.verdict is Verdict.DENYSOFT
    # the oldest of the three was sent 30 minutes ago: room again in 30 minutes
    assert refused.reply == replies.SEND_LIMIT.format(user="alice", limit=3, minutes=30)
    assert refused.reply.startswith("451 4.7.1 alice has sent 3 messages in the last hour")
    clock.now += 30 * 60 + 1  # the first one is now more than an hour old
    assert await send(plugin, conn, txn) is None
    assert await send(plugin, conn, txn) is not None  # and the limit holds again


async def test_each_user_has_their_own_count_and_limit(plugin, conn, txn) -> None:  # noqa: ANN001
    for _ in range(3):
        assert await send(plugin, conn, txn) is None
    assert await send(plugin, conn, txn) is not None
    for _ in range(5):  # bob has the default limit, 500
        assert await send(plugin, conn, txn, user="bob") is None


async def test_the_daemons_share_the_count(make_plugin, limited, conn, txn, clock) -> None:  # noqa: ANN001
    a, b = make_plugin("send_limits", settings=limited), make_plugin("send_limits",
                                                                     settings=limited)
    a.clock = b.clock = clock
    for p in (a, b, a):
        assert await send(p, conn, txn) is None
    assert await send(b, conn, txn) is not None


async def test_a_zero_limit_counts_nothing(make_plugin, limited, conn, txn) -> None:  # noqa: ANN001
    limited["user_limits"]["alice"]["messages_per_hour"] = 0
    p = make_plugin("send_limits", settings=limited)
    for _ in range(10):
        assert await send(p, conn, txn) is None


def test_a_user_gets_their_own_recipient_cap_and_everyone_else_max_recipients(
        limited, conn) -> None:  # noqa: ANN001
    settings = from_dict(limited)
    state = State(settings=settings, pipelines=None, passwords=None,  # type: ignore[arg-type]
                  bans=None)
    alice = conn(daemon="submission", auth_user="alice")
    assert state.recipient_limit(alice, 1) is None
    assert state.recipient_limit(alice, 2) == replies.USER_TOO_MANY_RECIPIENTS.format(
        user="alice", limit=2)
    assert state.recipient_limit(conn(daemon="submission", auth_user="bob"), 99) is None
    stranger = conn()
    assert state.recipient_limit(stranger, settings.max_recipients - 1) is None
    assert state.recipient_limit(stranger, settings.max_recipients) == \
        replies.TOO_MANY_RECIPIENTS


def test_the_overrides_and_defaults_reach_the_daemons() -> None:
    from appliance.config import parse
    from appliance.config.default import default_toml
    from appliance.services.smtpd import settings

    text = default_toml().replace("user_messages_per_hour = 500",
                                  "user_messages_per_hour = 50")
    config = parse(text + "\n[users.alice]\nmessages_per_hour = 7\n[users.bob]\n"
                   "recipients_per_message = 20\n")
    limits = settings(config).user_limits
    assert (limits["alice"].messages_per_hour, limits["alice"].recipients_per_message) == (7, 100)
    assert (limits["bob"].messages_per_hour, limits["bob"].recipients_per_message) == (50, 20)


def test_status_names_users_at_or_near_their_limit(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import sqlite3
    import time

    from appliance import paths
    from appliance.config import parse
    from appliance.config.default import default_toml
    from appliance.services.smtpd import Smtpd
    from appliance.smtpd.send_counts import FILE, SCHEMA

    monkeypatch.setattr(paths, "SMTPD_STATE", tmp_path)
    config = parse(default_toml() + "\n[users.alice]\nmessages_per_hour = 10\n"
                   "[users.bob]\nmessages_per_hour = 10\n[users.carol]\n")
    assert Smtpd().health(config).facts == []  # nothing sent yet: no file
    db = sqlite3.connect(tmp_path / FILE)
    db.executescript(SCHEMA)
    now = time.time()
    db.executemany("INSERT INTO sent VALUES (?, ?)",
                   [("alice", now - 60)] * 10 + [("bob", now - 60)] * 8
                   + [("carol", now - 60)] * 3 + [("bob", now - 4000)] * 5)
    db.commit()
    db.close()
    assert Smtpd().health(config).facts == [
        "send limit: alice sent 10 of 10 this hour (reached: MAIL gets 451)",
        "send limit: bob sent 8 of 10 this hour (near)"]


def test_status_leaves_no_files_of_its_own_beside_the_daemons_database(tmp_path) -> None:  # noqa: ANN001
    # `appliance status` runs as root: a -wal or -shm it made would be root's, and the
    # daemons (qpsmtpd) could no longer write their counts.
    import time

    from appliance.smtpd.plugins._sqlite import Store
    from appliance.smtpd.send_counts import FILE, SCHEMA, counts_last_hour

    store = Store(tmp_path / FILE, SCHEMA)
    now = time.time()
    store._run(lambda db: db.execute("INSERT INTO sent VALUES ('alice', ?)", (now,)), True)
    assert counts_last_hour(tmp_path, now) == {"alice": 1}  # a daemon has it open (WAL)
    store.close()  # the last daemon closed it: SQLite removed its -wal and -shm
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE]
    assert counts_last_hour(tmp_path, now) == {"alice": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE]
