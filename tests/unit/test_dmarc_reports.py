"""appliance.smtpd.dmarc.reports: rows -> aggregate XML -> gzipped mail through a fake Postfix."""

from __future__ import annotations

import asyncio
import gzip
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy

import pytest

from appliance.smtpd.dmarc import reports
from appliance.smtpd.dmarc.reports import DAY, Row
from tests.smtpd.support import FakePostfix, free_port

DAY1 = 20000 * DAY  # a UTC midnight
NOW = DAY1 + DAY + 3600  # the next day, 01:00


def row(ip="198.51.100.7", t=DAY1 + 100, domain="sender.example", **kw) -> Row:
    values = dict(time=t, source_ip=ip, header_from=domain, envelope_from=domain,
                  envelope_to="example.com", policy_domain=domain, spf_domain=domain,
                  spf_scope="mfrom", spf_result="pass", spf_aligned=True,
                  dkim=[(domain, "s1", "pass")], dkim_aligned=True, p="reject", sp="reject",
                  rua=f"dmarc@{domain}")
    values.update(kw)
    return Row(**values)


@pytest.fixture
def db(tmp_path):
    d = reports.open_store(tmp_path / "dmarc.sqlite")
    yield d
    d.close()


def count(db) -> int:
    return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


def test_build_report_counts():
    rows = [row(), row(t=DAY1 + 200), row(ip="192.0.2.9", spf_result="fail", spf_aligned=False,
                                          dkim=[], dkim_aligned=False, disposition="reject")]
    xml = reports.build_report(rows, org_name="mail.example.com",
                                    email="postmaster@example.com", domain="sender.example",
                                    begin=DAY1, end=DAY1 + DAY - 1, report_id="r1")
    root = ET.fromstring(xml)
    assert root.tag == "feedback"
    assert root.findtext("report_metadata/org_name") == "mail.example.com"
    assert root.findtext("report_metadata/report_id") == "r1"
    assert root.findtext("report_metadata/date_range/begin") == str(DAY1)
    assert root.findtext("policy_published/domain") == "sender.example"
    assert root.findtext("policy_published/p") == "reject"
    records = root.findall("record")
    assert len(records) == 2
    by_ip = {r.findtext("row/source_ip"): r for r in records}
    good, bad = by_ip["198.51.100.7"], by_ip["192.0.2.9"]
    assert good.findtext("row/count") == "2"
    assert good.findtext("row/policy_evaluated/dkim") == "pass"
    assert good.findtext("auth_results/dkim/selector") == "s1"
    assert good.findtext("auth_results/spf/scope") == "mfrom"
    assert good.findtext("identifiers/header_from") == "sender.example"
    assert bad.findtext("row/count") == "1"
    assert bad.findtext("row/policy_evaluated/disposition") == "reject"
    assert bad.findtext("row/policy_evaluated/spf") == "fail"
    assert bad.find("auth_results/dkim") is None
    assert sum(int(r.findtext("row/count")) for r in records) == 3


def test_store_and_pending(db):
    for r in (row(), row(t=DAY1 + DAY + 5), row(domain="other.example")):
        reports.store(db, r)
    groups = reports.pending(db, DAY1 + DAY)  # today's row is not reported yet
    assert sorted((d, day, len(v)) for (d, day), v in groups.items()) == [
        ("other.example", DAY1, 1), ("sender.example", DAY1, 1)]
    [(rid, r)] = groups[("sender.example", DAY1)]
    assert r == row()


def test_external_rua_needs_consent():
    asked = []

    def txt(name):
        asked.append(name)
        return ["v=DMARC1"] if name.endswith(".agreed.example") else []

    rua = ["dmarc@mail.sender.example", "x@agreed.example", "y@refused.example"]
    assert reports.allowed_recipients("sender.example", rua, txt) == [
        "dmarc@mail.sender.example", "x@agreed.example"]
    assert asked == ["sender.example._report._dmarc.agreed.example",
                     "sender.example._report._dmarc.refused.example"]


async def test_send_through_postfix(db):
    fake = FakePostfix()
    await fake.start()
    try:
        for r in (row(), row(), row(domain="other.example", rua="r@other.example"),
                  row(t=NOW - 10)):
            reports.store(db, r)
        sent = await asyncio.wait_for(asyncio.to_thread(
            reports.run, db, org_name="mail.example.com", sender="postmaster@example.com",
            now=NOW, port=fake.port, txt=lambda name: []), 10)
    finally:
        await fake.stop()
    assert sent == 2
    assert count(db) == 1  # today's row waits for tomorrow
    by_rcpt = {m.rcpt_tos[0]: m for m in fake.messages}
    assert set(by_rcpt) == {"dmarc@sender.example", "r@other.example"}
    m = by_rcpt["dmarc@sender.example"]
    assert m.mail_from == "postmaster@example.com"
    msg = message_from_bytes(m.content, policy=policy.default)
    assert msg["Subject"].startswith("Report Domain: sender.example Submitter: "
                                     "mail.example.com Report-ID: <")
    [part] = [p for p in msg.iter_attachments()]
    assert part.get_content_type() == "application/gzip"
    assert part.get_filename() == (f"mail.example.com!sender.example!{DAY1}!"
                                   f"{DAY1 + DAY - 1}.xml.gz")
    root = ET.fromstring(gzip.decompress(part.get_content()))
    assert root.findtext("record/row/count") == "2"


def test_send_failure_keeps_rows(db):
    reports.store(db, row())
    sent = reports.run(db, org_name="mail.example.com", sender="postmaster@example.com",
                            now=NOW, port=free_port(), txt=lambda name: [])
    assert sent == 0 and count(db) == 1


def test_old_rows_dropped_and_no_recipient_deleted(db):
    reports.store(db, row(t=DAY1 - 30 * DAY, rua="x@refused.example"))
    reports.store(db, row(rua="x@refused.example"))
    assert reports.run(db, org_name="m", sender="p@example.com", now=NOW,
                            port=free_port(), txt=lambda name: []) == 0
    assert count(db) == 0


def test_dry_run_sends_and_deletes_nothing(db, capsys):
    import io

    out = io.StringIO()
    reports.store(db, row())
    assert reports.run(db, org_name="m", sender="p@example.com", now=NOW,
                            port=free_port(), txt=lambda name: [], dry_run=True, out=out) == 0
    assert "<feedback>" in out.getvalue() and count(db) == 1


def test_main_without_store(tmp_path, monkeypatch):
    from appliance import paths

    conf = tmp_path / "appliance.toml"
    conf.write_text('[system]\nhostname = "mail"\ndomain = "example.com"\n')
    monkeypatch.setattr(paths, "CONFIG", conf)
    monkeypatch.setattr(paths, "SMTPD_STATE", tmp_path / "state")
    assert reports.main([]) == 0
    assert not (tmp_path / "state" / "dmarc.sqlite").exists()


async def test_reports_are_dkim_signed(db, tmp_path):
    import dkim

    from appliance import dkim_keys
    from appliance.config import parse
    from appliance.services.smtpd import settings as smtpd_settings

    dkim_keys.ensure_default_key(tmp_path / "keys", bits=1024)
    settings = smtpd_settings(parse(
        '[system]\nhostname = "mail"\ndomain = "example.com"\n'
        '[smtpd.dkim_sign]\nenabled = true\nselector = "default"\n'
    )).replace(dkim_keys=str(tmp_path / "keys"))
    sign = reports.signer(settings, "postmaster@example.com")
    assert sign is not None
    assert reports.signer(settings, "postmaster@elsewhere.example") is None
    fake = FakePostfix()
    await fake.start()
    try:
        reports.store(db, row())
        await asyncio.wait_for(asyncio.to_thread(
            reports.run, db, org_name="mail.example.com", sender="postmaster@example.com",
            now=NOW, port=fake.port, txt=lambda name: [], sign=sign), 10)
    finally:
        await fake.stop()
    [m] = fake.messages
    assert m.content.startswith(b"DKIM-Signature: ")
    value = dkim_keys.dkim_txt(tmp_path / "keys", "example.com")[1].encode()
    assert dkim.verify(m.content, dnsfunc=lambda name, timeout=5: value)


def test_a_failed_consent_lookup_keeps_the_rows_for_the_next_run(db):
    reports.store(db, row(rua="x@agreed.example"))

    def txt(name):
        raise OSError("DNS lookup timed out")

    assert reports.run(db, org_name="m", sender="p@example.com", now=NOW,
                            port=free_port(), txt=txt) == 0
    assert count(db) == 1
