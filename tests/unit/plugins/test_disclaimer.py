"""disclaimer: our users' mail to other domains gets the disclaimer, and stays intact."""

from __future__ import annotations

import base64
import email.policy
from email.parser import BytesParser

import pytest

from tests.unit.plugins.conftest import message

TEXT = "Confidential: for the addressee only.\nExample Ltd <legal@example.com>"
OUT = ("alice@example.com", "x@other.example")  # one recipient outside: enough


def parsed(data: bytes):
    return BytesParser(policy=email.policy.default).parsebytes(data)


def content(part) -> str:
    """A text part's content with plain newlines (the wire has CRLF, encoded or not)."""
    return part.get_content().replace("\r\n", "\n")


def only_crlf(data: bytes) -> bool:
    return data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


HEAD = ("From: Alice <alice@example.com>\nTo: x@other.example\nSubject: hi\n"
        "Date: Sat, 21 Nov 2026 10:00:00 +0000\nMessage-ID: <d1@example.com>\n"
        "MIME-Version: 1.0\n")
PDF = b"%PDF-1.4\n\x00\x01binary\xff" * 20
PDF_B64 = base64.encodebytes(PDF).decode()

ALTERNATIVE = (
    'Content-Type: multipart/alternative; boundary="alt"\n\n'
    "--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: "
    "quoted-printable\n\nGr=C3=BC=C3=9Fe\n"
    "--alt\nContent-Type: text/html; charset=utf-8\n\n"
    "<html><body><p>Hi</p></body></html>\n--alt--\n"
)

MIXED = HEAD + (
    'Content-Type: multipart/mixed; boundary="mix"\n\n'
    "This is a multi-part message in MIME format.\n"
    "--mix\nContent-Type: text/plain; charset=us-ascii; format=flowed\n"
    "Content-Disposition: inline\n\nSee attached.\n"
    "--mix\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n"
    f"Content-Disposition: attachment; filename=a.pdf\n\n{PDF_B64}"
    "--mix\nContent-Type: text/plain; name=notes.txt\n"
    "Content-Disposition: attachment; filename=notes.txt\n\nattached notes\n"
    "--mix--\n"
)


@pytest.fixture
def disclaimer(make_plugin, base_settings):
    def make(text: str = TEXT, org_text: str = ""):
        settings = dict(base_settings)
        settings["domains"] = {k: dict(v) for k, v in base_settings["domains"].items()}
        settings["domains"]["example.org"]["disclaimer"] = org_text
        return make_plugin("disclaimer", settings=settings, enabled=True, text=text)
    return make


async def run(plugin, conn, txn, data: bytes, sender="alice@example.com", recipients=OUT):
    t = txn(sender=sender, recipients=recipients, data=data)
    assert await plugin.hook_data_post(conn(daemon="submission", auth_user="alice"), t) is None
    assert only_crlf(t.data)
    return t.data


async def test_plain_message_gets_the_text_at_the_end(disclaimer, conn, txn):
    out = await run(disclaimer(), conn, txn, message({"From": "alice@example.com"}))
    msg = parsed(out)
    assert content(msg) == "Hello.\n\n" + TEXT + "\n"
    assert msg["Content-Transfer-Encoding"] in (None, "7bit")
    assert msg["Subject"] == "test" and msg["Message-ID"] == "<t1@sender.example>"
    assert out.count(b"MIME-Version") == 1


@pytest.mark.parametrize(("sender", "recipients"), [
    ("alice@example.com", ("bob@example.com", "sales@example.org")),  # internal only
    ("someone@other.example", ("x@elsewhere.example",)),  # not from our domains
    ("", ("x@other.example",)),  # a bounce
])
async def test_only_mail_from_us_to_outside(disclaimer, conn, txn, sender, recipients):
    data = message()
    assert await run(disclaimer(), conn, txn, data, sender, recipients) == data


async def test_domain_text_wins_and_no_text_means_no_change(disclaimer, conn, txn):
    out = await run(disclaimer(org_text="Org only."), conn, txn, message(),
                    sender="bob@example.org")
    assert content(parsed(out)).endswith("\nOrg only.\n")
    data = message()
    assert await run(disclaimer(text=""), conn, txn, data) == data


async def test_quoted_printable_body_stays_quoted_printable(disclaimer, conn, txn):
    data = crlf(HEAD + "Content-Type: text/plain; charset=iso-8859-1\n"
                "Content-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe\n")
    out = await run(disclaimer(text="Vertraulich – nur für Empfänger."), conn, txn, data)
    msg = parsed(out)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(msg) == "Grüße\n\nVertraulich – nur für Empfänger.\n"
    assert msg.get_content_charset() == "utf-8"  # latin-1 has no dash


async def test_base64_body_stays_base64(disclaimer, conn, txn):
    body = base64.encodebytes("Grüße\n".encode()).decode()
    data = crlf(HEAD + "Content-Type: text/plain; charset=utf-8\n"
                f"Content-Transfer-Encoding: base64\n\n{body}")
    msg = parsed(await run(disclaimer(), conn, txn, data))
    assert msg["Content-Transfer-Encoding"] == "base64"
    assert content(msg) == "Grüße\n\n" + TEXT + "\n"


async def test_alternative_gets_it_in_both_versions(disclaimer, conn, txn):
    text = "Terms & <conditions>\napply"
    msg = parsed(await run(disclaimer(text=text), conn, txn, crlf(HEAD + ALTERNATIVE)))
    plain, html = msg.iter_parts()
    assert content(plain) == "Grüße\n\n" + text + "\n"
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(html) == ("<html><body><p>Hi</p><p>Terms &amp; &lt;conditions&gt;"
                                  "<br>\napply</p>\n</body></html>\n")
    assert "MIME-Version" not in plain and "MIME-Version" not in html


async def test_mixed_gets_it_in_the_first_text_and_keeps_attachments(disclaimer, conn, txn):
    msg = parsed(await run(disclaimer(), conn, txn, crlf(MIXED)))
    body, pdf, notes = msg.iter_parts()
    assert content(body) == "See attached.\n\n" + TEXT + "\n"
    assert body.get_content_disposition() == "inline"
    assert body["Content-Type"].params["format"] == "flowed"
    assert pdf.get_payload(decode=True) == PDF
    assert pdf.get_filename() == "a.pdf"
    assert content(notes) == "attached notes"
    assert msg.preamble.startswith("This is a multi-part message")


async def test_mixed_with_alternative_body(disclaimer, conn, txn):
    data = crlf(HEAD + 'Content-Type: multipart/mixed; boundary="mix"\n\n--mix\n'
                + ALTERNATIVE + "--mix\nContent-Type: application/pdf\n"
                "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; "
                f"filename=a.pdf\n\n{PDF_B64}--mix--\n")
    msg = parsed(await run(disclaimer(), conn, txn, data))
    alternative, pdf = msg.iter_parts()
    plain, html = alternative.iter_parts()
    assert content(plain).endswith(TEXT + "\n")
    assert "Confidential: for the addressee only.<br>" in content(html)
    assert pdf.get_payload(decode=True) == PDF


async def test_signed_and_non_text_messages_are_left_alone(disclaimer, conn, txn):
    signed = crlf(HEAD + 'Content-Type: multipart/signed; protocol="application/'
                  'pgp-signature"; micalg=pgp-sha256; boundary="s"\n\n--s\n'
                  "Content-Type: text/plain\n\nsigned text\n--s\n"
                  "Content-Type: application/pgp-signature\n\nSIG\n--s--\n")
    pdf = crlf(HEAD + "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
               + PDF_B64)
    for data in (signed, pdf):
        assert await run(disclaimer(), conn, txn, data) == data


def test_mislabelled_8bit_text_is_left_unchanged_not_corrupted():
    from appliance.smtpd.plugins.disclaimer import rewrite

    data = ("From: alice@example.com\r\nTo: x@elsewhere.example\r\nSubject: hi\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nGr\u00fc\u00dfe\r\n").encode("utf-8")
    out, why = rewrite(data, "Confidential.")
    assert out is None and "left unchanged" in why
