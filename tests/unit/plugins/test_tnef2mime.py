"""tnef2mime: winmail.dat parts become the files inside them.

data/two-files.tnef is a real TNEF file from tnefparse's test suite (AUTHORS, README).
"""

from __future__ import annotations

import base64
import email.policy
from email.parser import BytesParser
from pathlib import Path

import tnefparse

TNEF = (Path(__file__).parent / "data" / "two-files.tnef").read_bytes()
FILES = {a.long_filename(): a.data for a in tnefparse.TNEF(TNEF).attachments}


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))


def mixed(tnef: bytes, ctype: str = "application/ms-tnef",
          filename: str = "winmail.dat") -> bytes:
    text = (
        "From: Someone <someone@sender.example>\r\nTo: alice@example.com\r\n"
        "Subject: files\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <t2@sender.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee the files.\r\n"
        f'--b1\r\nContent-Type: {ctype}; name="{filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n'
        f"{b64(tnef)}\r\n--b1--\r\n"
    )
    return text.encode()


def parsed(data: bytes):
    return BytesParser(policy=email.policy.default).parsebytes(data)


def only_crlf(data: bytes) -> bool:
    return data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


def test_fixture_is_a_real_tnef_with_two_files():
    assert sorted(FILES) == ["AUTHORS", "README"]
    assert all(FILES.values())


async def test_tnef_part_is_replaced_by_its_files(make_plugin, conn, txn):
    plugin = make_plugin("tnef2mime")
    t = txn(data=mixed(TNEF))
    assert await plugin.hook_data_post(conn(), t) is None
    assert only_crlf(t.data)
    msg = parsed(t.data)
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/octet-stream",
                                                    "application/octet-stream"]
    assert parts[0].get_content() == "See the files."
    files = {p.get_filename(): p.get_payload(decode=True) for p in parts[1:]}
    assert files == FILES
    assert all(p["Content-Transfer-Encoding"] == "base64" for p in parts[1:])
    assert b"ms-tnef" not in t.data
    assert msg["Subject"] == "files" and msg["Message-ID"] == "<t2@sender.example>"


async def test_found_by_file_name_too(make_plugin, conn, txn):
    plugin = make_plugin("tnef2mime")
    t = txn(data=mixed(TNEF, ctype="application/octet-stream", filename="WINMAIL.DAT"))
    await plugin.hook_data_post(conn(), t)
    names = [p.get_filename() for p in parsed(t.data).iter_parts()]
    assert names == [None, "AUTHORS", "README"]


async def test_message_that_is_only_tnef_becomes_multipart(make_plugin, conn, txn):
    plugin = make_plugin("tnef2mime")
    data = (b"From: someone@sender.example\r\nTo: alice@example.com\r\nSubject: x\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/ms-tnef\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(TNEF).encode() + b"\r\n")
    t = txn(data=data)
    await plugin.hook_data_post(conn(), t)
    msg = parsed(t.data)
    assert msg.get_content_type() == "multipart/mixed"
    assert {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_parts()} == FILES
    assert only_crlf(t.data)


async def test_corrupt_tnef_leaves_the_message_alone(make_plugin, conn, txn):
    plugin = make_plugin("tnef2mime")
    for junk in (b"not tnef at all" * 20, TNEF[:200]):
        t = txn(data=mixed(junk))
        before = t.data
        assert await plugin.hook_data_post(conn(), t) is None
        assert t.data == before


async def test_message_without_tnef_is_untouched(make_plugin, conn, txn):
    plugin = make_plugin("tnef2mime")
    data = mixed(b"%PDF-1.4 ...", ctype="application/pdf", filename="a.pdf")
    t = txn(data=data)
    await plugin.hook_data_post(conn(), t)
    assert t.data is data
