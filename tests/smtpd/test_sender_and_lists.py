"""Who may send as whom (sender_login) and who may write to the lists (badrcptto),
through the real daemon: alice sends only as herself; everyone@ and groups are internal."""

from __future__ import annotations

from appliance.smtpd import replies
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    LOOPBACK,
    PASSWORD,
    QUEUE_ID,
    FakePostfix,
    Outcome,
    auth_plain,
    client,
    in_thread,
    insecure_tls,
    message,
    port,
    send,
    transaction,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)
ACCOUNTS = """
[groups.sales]
members = ["alice", "bob"]
[pseudonyms."info"]
account = "alice"
"""


def as_alice(daemon_port: int, sender: str, from_: str) -> Outcome:
    with client(daemon_port) as s:
        s.starttls(context=insecure_tls())
        s.ehlo()
        s.docmd("AUTH", auth_plain("alice", PASSWORD))
        return transaction(s, sender, ["friend@elsewhere.example"],
                           message("from alice", from_=from_))


async def test_alice_on_587_sends_only_as_herself(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("submission", extra_toml=ACCOUNTS)
    p = port(daemon)

    bob = await in_thread(as_alice, p, "bob@example.com", "bob@example.com")
    ceo = await in_thread(as_alice, p, "ceo@bigbank.test", "ceo@bigbank.test")
    own = await in_thread(as_alice, p, "alice@example.com", "Alice <alice@example.com>")
    pseudonym = await in_thread(as_alice, p, "info@example.com", "info@example.com")
    bounce = await in_thread(as_alice, p, "", "alice@example.com")
    forged_from = await in_thread(as_alice, p, "alice@example.com", "bob@example.com")

    assert bob.mail == replies.SENDER_NOT_OWNED.format(address="bob@example.com",
                                                       user="alice")
    assert ceo.mail == replies.SENDER_NOT_OWNED.format(address="ceo@bigbank.test",
                                                       user="alice")
    assert bob.data is None and ceo.data is None
    assert (own.data, pseudonym.data, bounce.data) == (QUEUED, QUEUED, QUEUED)
    assert forged_from.data == replies.FROM_NOT_OWNED.format(address="bob@example.com",
                                                             user="alice")
    assert [m.mail_from for m in fake_postfix.messages] == [
        "alice@example.com", "info@example.com", "<>"]


async def test_send_as_lets_a_user_send_for_others(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    extra = ACCOUNTS + '[smtpd.sender_login]\nsend_as = ["@bigbank.test"]\n'
    daemon = await start_daemon("submission", extra_toml=extra)
    out = await in_thread(as_alice, port(daemon), "ceo@bigbank.test", "ceo@bigbank.test")
    assert out.data == QUEUED


async def test_everyone_and_groups_are_closed_to_the_internet(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon = await start_daemon("smtp", extra_toml=ACCOUNTS)  # loopback is the internet

    out = await in_thread(send, port(daemon), "sender@example.net",
                          ["everyone@example.com", "sales@example.com", "info@example.com"])

    assert out.rcpts == [replies.INTERNAL_ONLY.format(address="everyone@example.com"),
                         replies.INTERNAL_ONLY.format(address="sales@example.com"),
                         replies.OK_RECIPIENT]  # alice's pseudonym is public, as she is
    [got] = fake_postfix.messages
    assert got.rcpt_tos == ["info@example.com"]


async def test_local_networks_and_our_users_may_write_to_everyone(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    local = await start_daemon("smtp", local_networks=LOOPBACK, extra_toml=ACCOUNTS)
    internet = await start_daemon("smtp", extra_toml=ACCOUNTS)

    from_local = await in_thread(send, port(local), "printer@example.com",
                                 ["everyone@example.com"])

    def authenticated() -> Outcome:
        with client(port(internet)) as s:
            s.starttls(context=insecure_tls())
            s.ehlo()
            s.docmd("AUTH", auth_plain("alice", PASSWORD))
            return transaction(s, "alice@example.com", ["everyone@example.com",
                                                        "sales@example.com"],
                               message(from_="alice@example.com"))

    from_alice = await in_thread(authenticated)

    assert from_local.rcpts == [replies.OK_RECIPIENT] and from_local.data == QUEUED
    assert from_alice.rcpts == [replies.OK_RECIPIENT] * 2 and from_alice.data == QUEUED
