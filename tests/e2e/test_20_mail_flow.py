"""The user story: mail in on 25 lands in the INBOX; alice sends out on 587 and 465."""

from __future__ import annotations

import email.policy
import json
import re
import smtplib
import uuid

import pytest

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, Appliance, sink_messages, wait_for
from tests.e2e.mail import (
    TIMEOUT_S,
    date_now,
    imap_message,
    imap_subjects,
    message,
    pop3_subjects,
    send_port25,
    tls_context,
)

ALICE = f"alice@{DOMAIN}"


@pytest.fixture(scope="module")
def delivered_subject(appliance: Appliance) -> str:
    """One message from the internet to alice, waited for until it is in her INBOX."""
    msg = message("someone@remote.test", ALICE)
    refused = send_port25(appliance.ip, msg)
    assert refused == {}
    wait_for(lambda: msg["Subject"] in imap_subjects(appliance.ip, "alice", ALICE_PASSWORD),
             30, "the message in alice's INBOX")
    return str(msg["Subject"])


@pytest.mark.parametrize("port", [143, 993])
def test_internet_mail_on_25_is_readable_with_imap(appliance: Appliance, delivered_subject: str,
                                                   port: int) -> None:
    assert delivered_subject in imap_subjects(appliance.ip, "alice", ALICE_PASSWORD, port=port)


@pytest.mark.parametrize("port", [110, 995])
def test_internet_mail_on_25_is_readable_with_pop3(appliance: Appliance, delivered_subject: str,
                                                   port: int) -> None:
    assert delivered_subject in pop3_subjects(appliance.ip, "alice", ALICE_PASSWORD, port=port)


def test_internet_mail_carries_our_received_line_with_the_client(
        appliance: Appliance, delivered_subject: str) -> None:
    """RFC 5321 §4.4: our daemon's own trace line, under Postfix's and Dovecot's, naming
    the client's address (the host, as the bridge gateway) and its HELO."""
    hostname = json.loads(appliance.exec("cat", "/etc/appliance/smtpd.json").stdout)[
        "hostname"]
    raw = imap_message(appliance.ip, "alice", ALICE_PASSWORD, delivered_subject)
    assert raw is not None
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    received = [" ".join(f.split()) for f in re.findall(r"^Received:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*",
                                                        head, re.M)]
    ours = [f for f in received if "[198.51.100.1])" in f]
    assert len(ours) == 1, received
    assert re.fullmatch(
        r"Received: from sender\.remote\.test \(\S+ \[198\.51\.100\.1\]\) "
        rf"by {re.escape(hostname)} with ESMTP id [0-9A-F]{{16}} "
        rf"for <{re.escape(ALICE)}>; .+ [+-]\d{{4}}", ours[0]), ours[0]


def test_login_with_full_address_works_too(appliance: Appliance, delivered_subject: str) -> None:
    assert delivered_subject in imap_subjects(appliance.ip, ALICE, ALICE_PASSWORD)


def test_imap_refuses_plaintext_login_before_tls(appliance: Appliance) -> None:
    import imaplib

    imap = imaplib.IMAP4(appliance.ip, 143, timeout=TIMEOUT_S)
    try:
        assert "LOGINDISABLED" in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice", ALICE_PASSWORD)
    finally:
        imap.shutdown()


def _delivered_remotely(recipient: str) -> bytes:
    """Wait until Postfix has delivered to the remote test server (the sink)."""
    return wait_for(lambda: sink_messages(recipient), 30, f"mail for {recipient} at the sink")[0]


def test_alice_sends_on_587_with_starttls_and_auth_and_it_is_delivered(
    appliance: Appliance,
) -> None:
    recipient = "friend-587@remote.test"
    with smtplib.SMTP(appliance.ip, 587, timeout=TIMEOUT_S) as s:
        s.ehlo("laptop.test")
        assert not s.has_extn("auth"), "AUTH must not be offered before STARTTLS"
        s.starttls(context=tls_context())
        s.ehlo("laptop.test")
        assert "PLAIN" in s.esmtp_features["auth"]
        s.login("alice", ALICE_PASSWORD)
        assert s.send_message(message(ALICE, recipient)) == {}
    got = _delivered_remotely(recipient)
    assert b"Hello from the end-to-end tests." in got
    # our trace line says who sent it and how: TLS cipher, login, RFC 3848 protocol
    ours = " ".join(re.search(rb"Received: from laptop\.test .*?;", got, re.S)
                    .group(0).decode().split())  # type: ignore[union-attr]
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\) "
                     r"\(Authenticated sender: alice\) by \S+ with ESMTPSA id ", ours), ours


def test_alice_sends_on_465_with_implicit_tls_and_it_is_delivered(appliance: Appliance) -> None:
    recipient = "friend-465@remote.test"
    with smtplib.SMTP_SSL(appliance.ip, 465, timeout=TIMEOUT_S, context=tls_context()) as s:
        s.ehlo("laptop.test")
        assert not s.has_extn("starttls")
        s.login(ALICE, ALICE_PASSWORD)
        assert s.send_message(message(ALICE, recipient)) == {}
    assert b"Hello from the end-to-end tests." in _delivered_remotely(recipient)


# -- issue 18: long lines, bare postmaster, sub-addresses -------------------------------

LONG_LINE = "0123456789" * 500  # 5000 characters, five times RFC 5321's 998


def _long_line_message(sender: str, recipient: str) -> bytes:
    subject = f"long-line {uuid.uuid4().hex}"
    return (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
            f"Date: {date_now()}\r\nMessage-ID: <{uuid.uuid4().hex}@e2e.test>\r\n"
            f"\r\nbefore\r\n{LONG_LINE}\r\nafter\r\n").encode()


def _subject(raw: bytes) -> str:
    return raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("port", [25, 587])
def test_a_5000_character_line_arrives_whole_in_alices_mailbox(appliance: Appliance,
                                                               port: int) -> None:
    sender = ALICE if port == 587 else "someone@remote.test"
    raw = _long_line_message(sender, ALICE)
    with smtplib.SMTP(appliance.ip, port, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.remote.test")
        if port == 587:
            s.starttls(context=tls_context())
            s.ehlo("laptop.test")
            s.login("alice", ALICE_PASSWORD)
        assert s.mail(sender)[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, reply = s.data(raw)
    assert code == 250, reply  # was 500 Line too long, for good
    got = wait_for(lambda: imap_message(appliance.ip, "alice", ALICE_PASSWORD, _subject(raw)),
                   30, "the long-line message in alice's INBOX")
    assert f"\r\nbefore\r\n{LONG_LINE}\r\nafter\r\n".encode() in got  # not folded, not cut


def test_bare_postmaster_without_a_domain_reaches_the_admin(appliance: Appliance) -> None:
    msg = message("someone@remote.test", f"postmaster@{DOMAIN}")
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.remote.test")
        assert s.mail("someone@remote.test")[0] == 250
        assert s.rcpt("<PostMaster>")[0] == 250  # the envelope's, without a domain
        code, reply = s.data(msg.as_bytes(policy=email.policy.SMTP))
    assert code == 250, reply
    wait_for(lambda: msg["Subject"] in imap_subjects(appliance.ip, "alice", ALICE_PASSWORD),
             30, "postmaster's message in the admin's (alice's) INBOX")


@pytest.mark.parametrize("extension", ["+tag", "-tag"])
def test_sub_addressed_internet_mail_lands_in_alices_inbox(appliance: Appliance,
                                                           extension: str) -> None:
    recipient = f"alice{extension}@{DOMAIN}"
    msg = message("someone@remote.test", recipient)
    assert send_port25(appliance.ip, msg) == {}
    wait_for(lambda: msg["Subject"] in imap_subjects(appliance.ip, "alice", ALICE_PASSWORD),
             30, f"mail for {recipient} in alice's INBOX")
