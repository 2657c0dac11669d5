"""The ban rules and store: counting, delays, expiry, doubling, exemptions (own clock)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from appliance.config import parse
from appliance.config.default import default_toml
from appliance.security.bans import (
    MAX_DELAY,
    OFFENCE_MEMORY,
    BanError,
    BanStore,
    Rules,
    client_key,
    format_duration,
    parse_duration,
    rules_from_config,
)
from tests.clock import START, Clock

RULES = Rules(enabled=True, max_failures=10, find_time=600, ban_time=3600,
              max_ban_time=86400, failure_delay=1.0, account_failures=30,
              account_delay=5.0, never_ban=("127.0.0.0/8", "192.168.0.0/16"))




@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> BanStore:
    return BanStore(tmp_path / "bans.sqlite", RULES, clock)


def fail(store: BanStore, n: int, ip: str = "203.0.113.5", user: str = "bob",
         clock: Clock | None = None, step: float = 1.0):
    verdicts = []
    for _ in range(n):
        verdicts.append(store.failed(ip, "imap", user))
        if clock is not None:
            clock.now += step
    return verdicts


def test_ten_failures_within_ten_minutes_ban_for_an_hour(store: BanStore,
                                                         clock: Clock) -> None:
    verdicts = fail(store, 9, clock=clock, step=30)
    assert all(v.ban is None for v in verdicts)
    assert store.banned("203.0.113.5") is None
    tenth = store.failed("203.0.113.5", "submission", "carol")
    assert tenth.ban is not None and tenth.failures == 10
    ban = store.banned("203.0.113.5")
    assert ban is not None
    assert ban.until == clock.now + 3600
    assert (ban.protocol, ban.account, ban.failures) == ("submission", "carol", 10)
    assert ban.first_failure == START and ban.last_failure == clock.now
    assert ban.reason == "10 failed logins in 10m"
    clock.now += 3599
    assert store.banned("203.0.113.5") is not None
    clock.now += 2
    assert store.banned("203.0.113.5") is None


def test_failures_older_than_find_time_do_not_count(store: BanStore, clock: Clock) -> None:
    fail(store, 9, clock=clock, step=1)
    clock.now += 600  # the first nine are now out of the window
    assert store.failed("203.0.113.5", "imap", "bob").failures == 1
    assert store.banned("203.0.113.5") is None


def test_the_delay_doubles_from_the_second_failure_up_to_the_cap(store: BanStore) -> None:
    delays = [v.delay for v in fail(store, 9)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, MAX_DELAY, MAX_DELAY, MAX_DELAY, MAX_DELAY]


def test_a_repeat_offence_doubles_the_ban_up_to_the_maximum(store: BanStore,
                                                           clock: Clock) -> None:
    lengths = []
    for _ in range(7):
        ban = fail(store, 10)[-1].ban
        assert ban is not None
        lengths.append(ban.until - ban.since)
        clock.now = ban.until + 60  # comes back a minute after the ban ends
    assert lengths == [3600, 7200, 14400, 28800, 57600, 86400, 86400]
    assert [b.offences for b in store.bans()] == []  # none in force meanwhile


def test_an_offence_long_after_the_last_ban_is_a_first_one_again(store: BanStore,
                                                                clock: Clock) -> None:
    first = fail(store, 10)[-1].ban
    assert first is not None
    clock.now = first.until + OFFENCE_MEMORY + 1
    again = fail(store, 10)[-1].ban
    assert again is not None and again.offences == 1 and again.until - again.since == 3600


def test_failures_start_from_zero_after_a_ban(store: BanStore, clock: Clock) -> None:
    ban = fail(store, 10)[-1].ban
    assert ban is not None
    clock.now = ban.until + 1
    assert store.failed("203.0.113.5", "imap", "bob").failures == 1


def test_local_and_never_ban_networks_are_neither_slowed_nor_banned(
        store: BanStore) -> None:
    for ip in ("127.0.0.1", "192.168.4.20", "::ffff:192.168.4.20"):
        verdicts = fail(store, 15, ip=ip)
        assert all(v.delay == 0 and v.ban is None for v in verdicts), ip
        assert store.banned(ip) is None
    with pytest.raises(BanError, match="never_ban"):
        store.add("192.168.4.0/24", None)
    # were the exemption lifted, those failures would not count against the address
    unexempt = BanStore(store.path, dataclasses.replace(RULES, never_ban=()), store.clock)
    assert unexempt.failed("192.168.4.20", "imap", "bob").failures == 1
    assert unexempt.accounts_under_attack() == [("bob", 46)]


def test_ipv6_clients_are_counted_and_banned_by_their_64(store: BanStore) -> None:
    for i in range(10):  # ten addresses of one /64
        verdict = store.failed(f"2001:db8:1:2::{i + 1:x}", "pop3", "bob")
    assert verdict.ban is not None and verdict.ban.key == "2001:db8:1:2::/64"
    assert store.banned("2001:db8:1:2:ffff::1") is not None
    assert store.banned("2001:db8:1:3::1") is None
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9"


def test_an_account_guessed_from_many_addresses_is_slowed_not_locked(
        store: BanStore) -> None:
    for i in range(30):
        store.failed(f"198.51.100.{i + 1}", "imap", "Alice")
    assert store.account_delay("alice") == 0.0
    store.failed("198.51.100.200", "smtps", "alice")
    assert store.account_delay("ALICE ") == 5.0
    assert store.account_delay("bob") == 0.0
    assert store.accounts_under_attack() == [("alice", 31)]
    assert store.banned("198.51.100.1") is None  # one failure each: no address banned


def test_the_account_delay_ends_an_hour_after_the_failures(store: BanStore,
                                                          clock: Clock) -> None:
    for i in range(31):
        store.failed(f"198.51.100.{i + 1}", "imap", "alice")
    clock.now += 3601
    assert store.account_delay("alice") == 0.0
    assert store.accounts_under_attack() == []


def test_manual_bans_of_addresses_and_networks(store: BanStore, clock: Clock) -> None:
    forever = store.add("203.0.113.0/24", None, "spam run")
    assert forever.until is None and forever.key == "203.0.113.0/24"
    assert store.banned("203.0.113.77") is not None
    assert store.banned("203.0.114.1") is None
    timed = store.add("198.51.100.9", 1800)
    assert timed.until == clock.now + 1800
    assert {b.key for b in store.bans()} == {"203.0.113.0/24", "198.51.100.9"}
    # failures of a banned address do not start another ban over it
    assert fail(store, 12, ip="203.0.113.77")[-1].ban is None
    assert store.remove("203.0.113.0/24") == ["203.0.113.0/24"]
    assert store.banned("203.0.113.77") is None
    assert store.remove("203.0.113.0/24") == []
    clock.now += 1801
    assert store.bans() == []
    with pytest.raises(BanError, match="neither"):
        store.add("mail.example.com", None)


def test_removing_a_ban_forgets_its_failures(store: BanStore) -> None:
    fail(store, 10)
    assert store.remove("203.0.113.5") == ["203.0.113.5"]
    assert store.failed("203.0.113.5", "imap", "bob").failures == 1


def test_removing_an_ipv6_address_lifts_the_ban_on_its_64(store: BanStore) -> None:
    fail(store, 10, ip="2001:db8::5")
    assert store.remove("2001:db8::5") == ["2001:db8::/64"]
    assert store.banned("2001:db8::5") is None


def test_two_stores_share_one_file(tmp_path: Path, clock: Clock) -> None:
    a = BanStore(tmp_path / "b.sqlite", RULES, clock)
    b = BanStore(tmp_path / "b.sqlite", RULES, clock)
    fail(a, 5)
    fail(b, 5)
    assert a.banned("203.0.113.5") is not None
    assert not list(tmp_path.glob("*-journal")) and not list(tmp_path.glob("*-wal"))


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "10m", "2h", "3d", "1w")] == [
        90, 90, 600, 7200, 3 * 86400, 7 * 86400]
    for bad in ("", "0", "1y", "-5m", "h"):
        with pytest.raises(BanError):
            parse_duration(bad)
    assert [format_duration(s) for s in (40, 600, 3600, 5400, 90061)] == [
        "40s", "10m", "1h", "1h 30m", "1d 1h"]


def test_rules_from_the_default_config_never_ban_the_local_networks() -> None:
    data = parse(default_toml()).data
    rules = rules_from_config(data)
    assert (rules.max_failures, rules.find_time, rules.ban_time) == (10, 600, 3600)
    assert set(data["network"]["local_networks"]) <= set(rules.never_ban)


def test_a_botnet_is_counted_for_the_account_whatever_domain_and_however_banned(
        store: BanStore) -> None:
    # four addresses, each banned after ten failures, guessing alice at any domain
    for i in range(4):
        for n in range(10):
            store.failed(f"203.0.113.{i + 1}", "imap", f"Alice@x{n}.example")
    assert all(store.banned(f"203.0.113.{i + 1}") for i in range(4))
    assert store.accounts_under_attack() == [("alice", 40)]
    assert store.account_delay("alice@example.com") == 5.0
    store.remove("203.0.113.1")  # forgiving the address does not hide the account's
    assert store.accounts_under_attack() == [("alice", 40)]


def test_what_a_client_sent_is_stored_printable(store: BanStore) -> None:
    ban = fail(store, 10, user="[/x]\x1b]0;owned\x07" + "y" * 500)[-1].ban
    assert ban is not None and ban.account == "[/x]?]0;owned?" + "y" * 114


def test_ipv4_mapped_networks_ban_the_ipv4_clients_and_reasons_are_one_line(
        store: BanStore) -> None:
    assert store.add("::ffff:203.0.113.0/120", None).key == "203.0.113.0/24"
    assert store.banned("203.0.113.40") is not None
    assert store.add("::ffff:198.51.100.9", None).key == "198.51.100.9"
    with pytest.raises(BanError, match="one line"):
        store.add("198.51.100.10", None, "spam\r\n250 ok")
