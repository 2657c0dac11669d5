"""Verdict labels: a 4xx is "deferred", a 5xx "rejected", in the log, status and console."""

from __future__ import annotations

import pytest

from appliance.smtpd.results import Result, Verdict, outcome
from appliance.status import transaction_verdict
from console.screens.status import _short


@pytest.mark.parametrize(("reply", "label"), [
    ("451 4.3.2 Server busy, try again later", "deferred"),
    ("450 4.7.1 No plugin decided", "deferred"),
    ('"421"', "deferred"),
    ("553 5.1.3 Address not accepted by the mail queue", "rejected"),
    ("550 5.7.1 Relaying denied", "rejected"),
])
def test_the_label_follows_the_reply_code(reply: str, label: str) -> None:
    assert outcome(reply) == label


def test_a_result_without_reply_text_is_labelled_by_its_verdict() -> None:
    assert Result(Verdict.DENYSOFT).outcome == "deferred"
    assert Result(Verdict.DENY_DISCONNECT).outcome == "rejected"
    # the reply code wins over a verdict that says otherwise (the hand-off's 553)
    assert Result(Verdict.DENYSOFT, "553 5.1.3 Bad address").outcome == "rejected"


LINE = ("2026-11-21T10:05:00 smtp 198.51.100.9 helo=y from=<b@spam.test> "
        "to=<alice@example.com> verdict={verdict} by={by} reply=\"{code}\" ms=3")


@pytest.mark.parametrize(("logged", "code", "shown"), [
    ("rejected", "451", "deferred"),  # as lines were written before the fix
    ("deferred", "553", "rejected"),
    ("rejected", "550", "rejected"),
])
def test_status_and_console_read_the_label_from_the_code(logged: str, code: str,
                                                         shown: str) -> None:
    line = LINE.format(verdict=logged, by="loadcheck", code=code)
    fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
    assert transaction_verdict(fields) == shown
    assert _short(line).endswith(f" {shown} by loadcheck")


def test_a_line_without_a_reply_keeps_its_verdict() -> None:
    assert transaction_verdict({"verdict": "queued"}) == "queued"
    assert _short("2026-11-21T10:00:00 smtp 198.51.100.1 helo=x from=<a@r.test> "
                  "to=<alice@example.com> verdict=queued ms=12").endswith(" queued")
