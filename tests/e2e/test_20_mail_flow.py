"""The user story: mail in on 25 lands in the INBOX; alice sends out on 587 and 465."""

from __future__ import annotations

import smtplib

import pytest

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, Appliance, sink_messages, wait_for
from tests.e2e.mail import (
    TIMEOUT_S,
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
    assert b"Hello from the end-to-end tests." in _delivered_remotely(recipient)


def test_alice_sends_on_465_with_implicit_tls_and_it_is_delivered(appliance: Appliance) -> None:
    recipient = "friend-465@remote.test"
    with smtplib.SMTP_SSL(appliance.ip, 465, timeout=TIMEOUT_S, context=tls_context()) as s:
        s.ehlo("laptop.test")
        assert not s.has_extn("starttls")
        s.login(ALICE, ALICE_PASSWORD)
        assert s.send_message(message(ALICE, recipient)) == {}
    assert b"Hello from the end-to-end tests." in _delivered_remotely(recipient)
