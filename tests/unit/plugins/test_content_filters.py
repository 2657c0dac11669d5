"""spamassassin, clamav and pattern_filter against protocol-speaking spamd and clamd."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.smtpd.results import Verdict
from tests.samples import EICAR, GTUBE
from tests.unit.plugins.daemons import FakeClamd, FakeSpamd


def message(body: bytes = b"Hello.", subject: str = "hi", extra: bytes = b"") -> bytes:
    return (b"From: Someone <someone@sender.example>\r\nTo: alice@example.com\r\n"
            b"Subject: " + subject.encode() + b"\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000"
            b"\r\nMessage-ID: <m1@sender.example>\r\n" + extra + b"\r\n" + body + b"\r\n")


def with_attachment(name: str, payload: bytes, ctype: str = "application/octet-stream"
                    ) -> bytes:
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return message(
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b1\r\n"
        b"Content-Type: " + ctype.encode() + b"\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n\r\n' + b64 +
        b"--b1--", extra=b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; '
        b'boundary="b1"\r\n')


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


@pytest.fixture
async def spamd(tmp_path: Path) -> AsyncIterator[FakeSpamd]:
    daemon = await FakeSpamd(tmp_path / "spamd.sock").start()
    yield daemon
    await daemon.stop()


@pytest.fixture
async def clamd(tmp_path: Path) -> AsyncIterator[FakeClamd]:
    daemon = await FakeClamd(tmp_path / "clamd.sock").start()
    yield daemon
    await daemon.stop()


def spam_plugin(make_plugin, spamd, **config):
    settings = dict(socket=str(spamd.path), tag_level=5.0, reject_level=None,
                    max_message_size=500000, timeout=5)
    settings.update(config)
    return make_plugin("spamassassin", **settings)


# -- spamassassin --------------------------------------------------------------------------

async def test_gtube_is_tagged_with_spamassassin_headers_and_subject(make_plugin, spamd,
                                                                     conn, txn):
    plugin = spam_plugin(make_plugin, spamd, subject_tag=True, subject="[SPAM]")
    t = txn(data=message(GTUBE))
    assert await plugin.hook_data_post(conn(), t) is None
    head = t.data.split(b"\r\n\r\n")[0].decode()
    assert "X-Spam-Flag: YES" in head
    assert "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE,MISSING_DATE" in head
    assert "X-Spam-Score: 1000.0" in head
    assert "X-Spam-Level: " + "*" * 50 + "\r\n" in head
    assert "Subject: [SPAM] hi" in head
    # spamd saw the message as it is queued, no line of its own: the handler's
    # Received line (tests/smtpd/test_received.py) is already part of txn.data
    request = spamd.requests[0]
    assert request.split(b"\r\n\r\n", 1)[1] == message(GTUBE)


async def test_clean_mail_gets_status_no_and_no_flag(make_plugin, spamd, conn, txn):
    plugin = spam_plugin(make_plugin, spamd, subject_tag=True)
    t = txn(data=message())
    await plugin.hook_data_post(conn(), t)
    assert t.data.startswith(b"X-Spam-Status: No, score=1.2 required=5.0 tests=none\r\n"
                             b"X-Spam-Score: 1.2\r\nX-Spam-Level: *\r\n")
    assert b"X-Spam-Flag" not in t.data and b"Subject: hi\r\n" in t.data


async def test_score_at_the_reject_level_is_refused_with_550(make_plugin, spamd, conn, txn):
    plugin = spam_plugin(make_plugin, spamd, reject_level=12.0)
    result = await plugin.hook_data_post(conn(), txn(data=message(GTUBE)))
    assert result.verdict is Verdict.DENY and result.reply.startswith("550 5.7.1 ")
    assert "score 1000.0, limit 12" in result.reply


async def test_forged_spam_headers_from_outside_are_removed(make_plugin, spamd, conn, txn):
    plugin = spam_plugin(make_plugin, spamd)
    forged = b"X-Spam-Flag: YES\r\nX-Spam-Status: Yes,\r\n\tscore=99\r\n"
    t = txn(data=message(extra=forged))
    await plugin.hook_data_post(conn(), t)
    assert t.data.count(b"X-Spam-Status") == 1 and b"X-Spam-Flag" not in t.data
    assert b"score=99" not in t.data


async def test_our_users_are_not_scanned_unless_scan_local(make_plugin, spamd, conn, txn):
    user = conn(daemon="submission", auth_user="alice")
    t = txn(data=message(GTUBE))
    await spam_plugin(make_plugin, spamd).hook_data_post(user, t)
    assert spamd.requests == [] and b"X-Spam" not in t.data
    await spam_plugin(make_plugin, spamd, scan_local=True).hook_data_post(user, t)
    assert len(spamd.requests) == 1 and b"X-Spam-Flag: YES" in t.data


async def test_whitelisted_sender_is_not_scanned(make_plugin, spamd, conn, txn):
    t = txn(data=message(GTUBE))
    t.whitelisted = True
    assert await spam_plugin(make_plugin, spamd).hook_data_post(conn(), t) is None
    assert spamd.requests == [] and b"X-Spam-Flag" not in t.data


async def test_large_message_is_not_scanned_and_says_so(make_plugin, spamd, conn, txn):
    plugin = spam_plugin(make_plugin, spamd, max_message_size=1000)
    t = txn(data=message(GTUBE + b"x" * 2000))
    assert await plugin.hook_data_post(conn(), t) is None
    assert spamd.requests == []
    assert t.data.startswith(b"X-Spam-Status: No, not scanned: message larger than 1000")


async def test_dead_spamd_defers_or_accepts_as_configured(make_plugin, spamd, conn, txn):
    spamd.fail = True
    result = await spam_plugin(make_plugin, spamd).hook_data_post(conn(), txn(data=message()))
    assert result.verdict is Verdict.DENYSOFT and result.reply.startswith("451 4.3.0")
    await spamd.stop()  # nothing listens: connection refused
    t = txn(data=message())
    plugin = spam_plugin(make_plugin, spamd, on_error="accept")
    assert await plugin.hook_data_post(conn(), t) is None
    assert t.data.startswith(b"X-Spam-Status: No, not scanned: spam filter unavailable")


def test_long_test_lists_are_folded():
    from appliance.smtpd.plugins.spamassassin import fold_tests

    tests = [f"RULE_NUMBER_{i:02d}" for i in range(12)]
    folded = fold_tests(tests, 40)
    assert folded.replace("\r\n\t", "") == ",".join(tests)
    assert all(len(line) <= 78 for line in folded.split("\r\n"))


def test_subject_tag_is_added_once_and_to_mail_without_subject():
    from appliance.smtpd.plugins.spamassassin import tag_subject

    once = tag_subject(message(), "[SPAM]")
    assert b"Subject: [SPAM] hi\r\n" in once
    assert tag_subject(once, "[SPAM]") == once
    bare = b"From: a@b.example\r\n\r\nbody\r\n"
    assert tag_subject(bare, "[SPAM]").startswith(b"Subject: [SPAM]\r\nFrom:")


# -- clamav ----------------------------------------------------------------------------------

def clam_plugin(make_plugin, clamd, **config):
    settings = dict(socket=str(clamd.path), max_scanner_size=25000000,
                    archive_max_compression_ratio=300, timeout=5)
    settings.update(config)
    return make_plugin("clamav", **settings)


async def test_eicar_attachment_is_refused_with_the_signature_name(make_plugin, clamd,
                                                                   conn, txn):
    result = await clam_plugin(make_plugin, clamd).hook_data_post(
        conn(), txn(data=with_attachment("eicar.com", EICAR)))
    assert result.verdict is Verdict.DENY
    assert result.reply == "550 5.7.1 Virus found: Eicar-Test-Signature"


async def test_clean_mail_is_marked_checked(make_plugin, clamd, conn, txn):
    t = txn(data=message())
    assert await clam_plugin(make_plugin, clamd).hook_data_post(conn(), t) is None
    assert t.data.startswith(b"X-Virus-Checked: Checked by ClamAV on mail.example.com\r\n")
    assert clamd.requests == [message()]


async def test_archive_past_clamds_limits_is_refused_unless_allowed(make_plugin, clamd,
                                                                   conn, txn):
    clamd.verdict = b"stream: Heuristics.Limits.Exceeded.MaxFiles FOUND"
    result = await clam_plugin(make_plugin, clamd).hook_data_post(conn(), txn(data=message()))
    assert result.verdict is Verdict.DENY
    assert result.reply == ("552 5.3.4 Message could not be fully scanned for viruses "
                            "(Heuristics.Limits.Exceeded.MaxFiles)")
    plugin = clam_plugin(make_plugin, clamd, reject_unscannable=False)
    assert await plugin.hook_data_post(conn(), txn(data=message())) is None
    clamd.verdict = b"stream: lstat() failed: No such file. ERROR"
    result = await plugin.hook_data_post(conn(), txn(data=message()))
    assert result.verdict is Verdict.DENYSOFT


async def test_clamd_down_defers_by_default(make_plugin, clamd, conn, txn):
    clamd.fail = True
    result = await clam_plugin(make_plugin, clamd).hook_data_post(conn(), txn(data=message()))
    assert result.verdict is Verdict.DENYSOFT and result.reply.startswith("451 4.3.0")
    t = txn(data=message())
    assert await clam_plugin(make_plugin, clamd, on_error="accept").hook_data_post(
        conn(), t) is None
    assert t.data.startswith(b"X-Virus-Checked: not scanned: virus scanner unavailable")


async def test_zip_bomb_is_refused_before_scanning(make_plugin, clamd, conn, txn):
    bomb = zipped("zeros.bin", b"\0" * 5_000_000)  # about 1000 times smaller zipped
    result = await clam_plugin(make_plugin, clamd).hook_data_post(
        conn(), txn(data=with_attachment("zeros.zip", bomb, "application/zip")))
    assert result.verdict is Verdict.DENY and result.reply.startswith("552 5.3.4 ")
    assert "zeros.zip: zeros.bin" in result.reply and clamd.requests == []
    ok = zipped("notes.txt", b"ordinary text " * 100)
    assert await clam_plugin(make_plugin, clamd).hook_data_post(
        conn(), txn(data=with_attachment("notes.zip", ok, "application/zip"))) is None


async def test_message_over_max_scanner_size_is_not_scanned(make_plugin, clamd, conn, txn):
    t = txn(data=message(b"x" * 200_000))
    assert await clam_plugin(make_plugin, clamd, max_scanner_size=100_000).hook_data_post(
        conn(), t) is None
    assert clamd.requests == []
    assert t.data.startswith(b"X-Virus-Checked: not scanned: message larger than 100000")


# -- pattern_filter ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["setup.exe", "INVOICE.PDF.EXE", "run.bat", "x.exe. ",
                                  "script.vbs", "c:\\temp\\evil.scr"])
async def test_executable_attachments_are_refused(make_plugin, conn, txn, name):
    plugin = make_plugin("pattern_filter")
    result = await plugin.hook_data_post(conn(), txn(data=with_attachment(name, b"MZ")))
    assert result.verdict is Verdict.DENY and result.reply.startswith("550 5.7.1 ")
    assert "blocked file type" in result.reply


@pytest.mark.parametrize("name", ["report.pdf", "archive.zip", "photo.jpg", "exe"])
async def test_other_attachments_pass(make_plugin, conn, txn, name):
    plugin = make_plugin("pattern_filter")
    assert await plugin.hook_data_post(conn(), txn(data=with_attachment(name, b"x"))) is None


async def test_patterns_are_configurable(make_plugin, conn, txn):
    plugin = make_plugin("pattern_filter", patterns=["*.docm"])
    assert await plugin.hook_data_post(conn(), txn(data=with_attachment("a.exe", b"x"))) \
        is None
    result = await plugin.hook_data_post(conn(), txn(data=with_attachment("a.DOCM", b"x")))
    assert result.verdict is Verdict.DENY


async def test_rfc2231_continued_and_second_file_names_are_checked(make_plugin, conn, txn):
    plugin = make_plugin("pattern_filter")
    continued = with_attachment("x", b"MZ").replace(
        b'filename="x"', b'filename*0="evil.e"; filename*1="xe"')
    result = await plugin.hook_data_post(conn(), txn(data=continued))
    assert result.verdict is Verdict.DENY and "evil.exe" in result.reply
    renamed = with_attachment("notes.txt", b"MZ").replace(
        b"Content-Type: application/octet-stream",
        b'Content-Type: application/octet-stream; name="run.scr"')
    result = await plugin.hook_data_post(conn(), txn(data=renamed))
    assert result.verdict is Verdict.DENY and "run.scr" in result.reply


async def test_small_members_that_compress_well_are_not_zip_bombs(make_plugin, clamd, conn,
                                                                 txn):
    sheet = zipped("empty.csv", b"," * 120_000)  # far over 300:1, but small
    assert await clam_plugin(make_plugin, clamd).hook_data_post(
        conn(), txn(data=with_attachment("sheet.zip", sheet, "application/zip"))) is None


async def test_forged_scanner_headers_are_removed_from_every_client(make_plugin, spamd,
                                                                   clamd, conn, txn):
    lan = conn(relay_client=True)  # not scanned by spamd, still not trusted to sort mail
    t = txn(data=message(extra=b"X-Spam-Flag: YES\r\nX-Virus-Checked: Checked by ClamAV\r\n"))
    await spam_plugin(make_plugin, spamd).hook_data_post(lan, t)
    assert b"X-Spam-Flag" not in t.data and spamd.requests == []
    await clam_plugin(make_plugin, clamd).hook_data_post(lan, t)
    assert t.data.count(b"X-Virus-Checked") == 1
    assert t.data.startswith(b"X-Virus-Checked: Checked by ClamAV on mail.example.com\r\n")


def test_a_non_ascii_subject_tag_is_encoded():
    from appliance.smtpd.plugins.spamassassin import tag_subject

    tagged = tag_subject(message(), "[PUBLICITÉ]")
    assert b"Subject: =?utf-8?" in tagged and tagged.isascii()
