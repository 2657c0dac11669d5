"""appliance.smtpd.txlog: the one terse line per transaction, field by field."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.smtpd import txlog
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.results import Result, Verdict


def conn(**fields: object) -> Connection:
    c = Connection(daemon="smtp", remote_ip="198.51.100.7", remote_port=40000, local_port=25)
    c.started = 100.0
    for k, v in fields.items():
        setattr(c, k, v)
    return c


def txn(**fields: object) -> Transaction:
    t = Transaction(sender="a@example.org")
    t.started = 200.0
    for k, v in fields.items():
        setattr(t, k, v)
    return t


def test_a_queued_message_names_everything_in_order() -> None:
    c = conn(helo="mx.example.org", auth_user="alice", tls=True, tls_version="TLSv1.3")
    c.timings.update({"spf": 0.0031, "dkim": 0.008})
    t = txn(recipients=["bob@example.com", "carol@example.com"], queue_id="4F2A1B")
    t.rejected.append(("dave@example.com", "rcpt_ok", "550 5.1.1 unknown"))
    t.data = b"x" * 1234

    assert txlog.line(c, t, "queued", None, now=200.212) == (
        "smtp 198.51.100.7 helo=mx.example.org auth=alice tls=TLSv1.3 from=<a@example.org> "
        "to=<bob@example.com>,<carol@example.com> refused=<dave@example.com>:rcpt_ok "
        "size=1234 id=4F2A1B verdict=queued ms=212 t=spf:3.1,dkim:8.0")
    assert c.timings == {}  # the next line counts from here


def test_a_refusal_names_the_plugin_and_the_reply_code_and_counts_from_connect() -> None:
    c = conn(naughty=("550 5.7.1 listed", "dnsbl"))
    result = Result(Verdict.DENY, "550 5.7.1 Listed at zen.example", "dnsbl")

    assert txlog.line(c, None, "rejected", result, now=100.05) == (
        'smtp 198.51.100.7 helo=- verdict=rejected by=dnsbl reply="550" naughty=dnsbl ms=50')


def test_the_reply_class_decides_the_verdict_whatever_the_caller_says() -> None:
    deferred = Result(Verdict.DENYSOFT, "451 4.7.1 Greylisted, try again later", "greylisting")
    line = txlog.line(conn(), txn(), "rejected", deferred, now=200.0)
    assert "to=- verdict=deferred by=greylisting reply=\"451\" ms=0" in line
    assert "tls=" not in line and "auth=" not in line and "size=" not in line


@pytest.mark.parametrize(("codes", "verdict"), [
    (["550", "550"], "rejected"),
    (["550", "451"], "deferred"),  # the client may come back for one of them
])
def test_a_transaction_whose_recipients_were_all_refused(
    caplog: pytest.LogCaptureFixture, codes: list[str], verdict: str
) -> None:
    c = conn()
    c.transaction = txn(rejected=[(f"r{i}@example.com", "p", f"{code} no")
                                  for i, code in enumerate(codes)])
    caplog.set_level(logging.INFO, logger=txlog.LOGGER)

    txlog.end_transaction(c, "aborted")

    assert c.transaction is None
    [record] = [r for r in caplog.records if r.name == txlog.LOGGER]
    assert f"verdict={verdict} " in record.getMessage()


def test_ending_with_no_transaction_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=txlog.LOGGER)
    txlog.end_transaction(conn(), "aborted")
    assert [r for r in caplog.records if r.name == txlog.LOGGER] == []


def test_lines_also_go_to_the_daemons_file(tmp_path: Path) -> None:
    import getpass

    before = list(txlog.terse.handlers)
    level = txlog.terse.level
    txlog.terse.setLevel(logging.INFO)
    try:
        txlog.to_file(str(tmp_path / "log"), "submission", getpass.getuser())
        txlog.write(conn(daemon="submission"), None, "rejected",
                    Result(Verdict.DENY, "554 5.7.1 no", "earlytalker"))
        for h in txlog.terse.handlers:
            h.flush()
        text = (tmp_path / "log" / "smtpd-submission.log").read_text()
    finally:
        for h in txlog.terse.handlers[len(before):]:
            txlog.terse.removeHandler(h)
            h.close()
        txlog.terse.setLevel(level)
    # an ISO timestamp, then the line
    stamp, rest = text.split(" ", 1)
    assert stamp[:4].isdigit() and stamp[10] == "T"
    assert rest.startswith("submission 198.51.100.7 helo=- verdict=rejected by=earlytalker ")
