"""Send limits and the tarpit in a running daemon: a logged-in user's messages per hour
(451 4.7.1 at MAIL past the limit, with an injected clock for the sliding hour), the
per-user override, the recipients-per-message cap (452 4.5.3), and the RCPT delay after
refused recipients on port 25 (an injected sleep, and one real, measured delay)."""

from __future__ import annotations

import logging
import time

import pytest

from appliance.smtpd import replies
from appliance.smtpd.main import Daemon
from tests.clock import Clock
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import (
    HASH,
    PASSWORD,
    QUEUE_ID,
    FakePostfix,
    client,
    in_thread,
    insecure_tls,
    line,
    message,
    port,
    transaction,
)

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)
# carol has her own limits (the override); alice and bob the defaults (500 and 100)
CAROL = (f'[users.carol]\npassword = "{HASH}"\nmessages_per_hour = 2\n'
         "recipients_per_message = 3\n")




def send_as(daemon: Daemon, user: str, mails: int, rcpts: int = 1) -> list[list[str]]:
    """USER logs in on 587 and sends MAILS messages of RCPTS recipients each, in one
    session; each message's MAIL, RCPT... and DATA replies (only MAIL's if it is refused,
    DATA's only when sent)."""
    outcomes = []
    with client(port(daemon)) as s:
        s.starttls(context=insecure_tls())
        s.login(user, PASSWORD)
        for n in range(mails):
            out = transaction(s, f"{user}@example.com",
                              [f"friend{i}@elsewhere.example" for i in range(rcpts)],
                              message(f"{user} {n}", from_=f"{user}@example.com"))
            if not out.mail.startswith("250"):  # the RCPTs then only get "need MAIL"
                outcomes.append([out.mail])
            else:
                outcomes.append([out.mail, *out.rcpts, *([out.data] if out.data else [])])
            if out.data is None:
                s.rset()
    return outcomes


async def start_limited(start_daemon: StartDaemon) -> tuple[Daemon, Clock]:
    daemon = await start_daemon("submission", extra_toml=CAROL)
    clock = Clock()
    daemon.handler.state.pipelines.instances["send_limits"].clock = clock  # type: ignore[attr-defined]
    return daemon, clock


async def test_past_the_hourly_limit_mail_gets_451_and_the_earlier_mail_went_out(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "appliance.smtpd.send_limits")
    daemon, clock = await start_limited(start_daemon)
    ok = [replies.OK_SENDER, replies.OK_RECIPIENT, QUEUED]

    first = await in_thread(send_as, daemon, "carol", 2)
    clock.now += 20 * 60
    refused = await in_thread(send_as, daemon, "carol", 1)

    assert first == [ok, ok]
    # both were sent at the same moment, 20 minutes ago: room again in 40 minutes
    assert refused == [[replies.SEND_LIMIT.format(user="carol", limit=2, minutes=40)]]
    assert refused[0][0].startswith("451 4.7.1 carol has sent 2 messages in the last hour")
    assert [m.mail_from for m in fake_postfix.messages] == ["carol@example.com"] * 2
    assert [r.getMessage() for r in caplog.records if r.name.endswith("send_limits")] == [
        "carol 127.0.0.1: send limit reached, 2 messages in the last hour (limit 2), "
        "MAIL refused"]
    # alice (the default, 500) is not held back by carol's count
    assert await in_thread(send_as, daemon, "alice", 3) == [ok, ok, ok]


async def test_the_hour_slides_each_message_leaves_the_count_an_hour_after_it(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon, clock = await start_limited(start_daemon)
    ok = [replies.OK_SENDER, replies.OK_RECIPIENT, QUEUED]

    assert await in_thread(send_as, daemon, "carol", 1) == [ok]
    clock.now += 30 * 60
    assert await in_thread(send_as, daemon, "carol", 1) == [ok]
    clock.now += 29 * 60
    [[full]] = await in_thread(send_as, daemon, "carol", 1)
    clock.now += 60 + 1  # the first is now more than an hour old; the second is not
    room = await in_thread(send_as, daemon, "carol", 2)

    assert full == replies.SEND_LIMIT.format(user="carol", limit=2, minutes=1)
    assert room == [ok, [replies.SEND_LIMIT.format(user="carol", limit=2, minutes=30)]]
    assert len(fake_postfix.messages) == 3


async def test_a_users_message_takes_their_recipients_per_message_and_no_more(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    daemon, _ = await start_limited(start_daemon)

    [carol] = await in_thread(send_as, daemon, "carol", 1, 5)
    [alice] = await in_thread(send_as, daemon, "alice", 1, 5)  # the default: 100

    too_many = replies.USER_TOO_MANY_RECIPIENTS.format(user="carol", limit=3)
    assert carol == [replies.OK_SENDER, *[replies.OK_RECIPIENT] * 3, too_many, too_many, QUEUED]
    assert too_many.startswith("452 4.5.3 ")
    assert alice == [replies.OK_SENDER, *[replies.OK_RECIPIENT] * 5, QUEUED]
    assert [len(m.rcpt_tos) for m in fake_postfix.messages] == [3, 5]


def refuse_then_accept(daemon: Daemon, unknown: int) -> list[tuple[str, float]]:
    """From the internet on port 25: RCPTs to UNKNOWN users that do not exist, then one
    to alice; each reply with the seconds it took."""
    took = []
    with client(port(daemon)) as s:
        s.ehlo()
        assert s.mail("someone@elsewhere.example")[0] == 250
        for rcpt in [f"nobody{i}@example.com" for i in range(unknown)] + ["alice@example.com"]:
            start = time.monotonic()
            reply = line(s.rcpt(rcpt))
            took.append((reply, time.monotonic() - start))
    return took


async def test_rcpts_wait_only_after_the_tarpit_count_of_refused_ones(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\ntarpit_count = 3\n"
                                "tarpit_delay = 9\n")
    waits: list[float] = []
    tarpit = daemon.handler.state.pipelines.instances["tarpit"]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    tarpit.sleep = sleep  # type: ignore[attr-defined]

    took = await in_thread(refuse_then_accept, daemon, 5)

    unknown = [replies.USER_UNKNOWN.format(address=f"nobody{i}@example.com") for i in range(5)]
    assert [reply for reply, _ in took] == [*unknown, replies.OK_RECIPIENT]
    # after 3 refused: the 4th and 5th unknown and alice wait, each the full delay
    assert waits == [9, 9, 9]


async def test_a_tarpitted_rcpt_really_waits_the_delay(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtp", extra_toml="[smtpd]\ntarpit_count = 1\n"
                                "tarpit_delay = 1\n")

    took = await in_thread(refuse_then_accept, daemon, 1)

    (_, fast), (accepted, slow) = took
    print(f"tarpit delay 1 s after 1 refused: RCPT took {fast:.3f} s, then {slow:.3f} s")
    assert accepted == replies.OK_RECIPIENT
    assert fast < 1 <= slow


async def test_our_users_and_local_networks_are_never_tarpitted(
    start_daemon: StartDaemon, fake_postfix: FakePostfix
) -> None:
    local = await start_daemon("smtp", local_networks=["127.0.0.0/8"],
                               extra_toml="[smtpd]\ntarpit_count = 1\n")
    submission = await start_daemon("submission", extra_toml="[smtpd]\ntarpit_count = 1\n")

    assert "tarpit" not in [p.name for p in local.handler.state.pipelines.for_peer("local")
                            .plugins]
    assert "tarpit" not in [p.name for p in submission.handler.state.pipelines.for_peer(
        "authenticated").plugins]
    assert "tarpit" in [p.name for p in local.handler.state.pipelines.for_peer(
        "internet").plugins]

    def local_session() -> list[str]:
        with client(port(local)) as s:
            s.ehlo()
            return transaction(s, "alice@example.com",
                               ["nobody@example.com", "alice@example.com"],
                               message()).rcpts

    start = time.monotonic()
    rcpts = await in_thread(local_session)
    assert time.monotonic() - start < 5  # the default delay, 5 s, was not waited
    assert rcpts == [replies.USER_UNKNOWN.format(address="nobody@example.com"),
                     replies.OK_RECIPIENT]

