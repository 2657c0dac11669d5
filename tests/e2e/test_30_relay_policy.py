"""Nothing is an open relay; the host (the bridge gateway) counts as the internet."""

from __future__ import annotations

import smtplib

import pytest

from appliance.smtpd import replies
from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, Appliance
from tests.e2e.mail import TIMEOUT_S, tls_context


def _code(reply: str) -> int:
    return int(reply[:3])


def test_unauthenticated_relay_from_the_internet_is_refused_at_rcpt(appliance: Appliance) -> None:
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("spammer.test")
        assert s.mail("spam@spammer.test")[0] == 250
        code, text = s.rcpt("victim@elsewhere.test")
    assert (code, text.decode()) == (_code(replies.RELAY_DENIED), replies.RELAY_DENIED[4:])


def test_relay_is_refused_even_after_starttls_without_auth(appliance: Appliance) -> None:
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("spammer.test")  # smtplib would otherwise say EHLO with the host's name
        s.starttls(context=tls_context())
        s.ehlo("spammer.test")
        s.mail("spam@spammer.test")
        code, text = s.rcpt("victim@elsewhere.test")
    assert code == 550 and text.startswith(b"5.7.1")


def test_unknown_local_recipient_is_refused_at_rcpt(appliance: Appliance) -> None:
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.test")
        s.mail("someone@remote.test")
        code, text = s.rcpt(f"nobody@{DOMAIN}")
    expected = replies.USER_UNKNOWN.format(address=f"nobody@{DOMAIN}")
    assert (code, text.decode()) == (550, expected[4:])


def test_port_25_offers_no_auth_before_tls(appliance: Appliance) -> None:
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth")


@pytest.mark.parametrize("port", [587, 465])
def test_submission_ports_require_auth(appliance: Appliance, port: int) -> None:
    if port == 465:
        s: smtplib.SMTP = smtplib.SMTP_SSL(appliance.ip, port, timeout=TIMEOUT_S,
                                           context=tls_context())
    else:
        s = smtplib.SMTP(appliance.ip, port, timeout=TIMEOUT_S)
        s.ehlo("client.test")
        code, _ = s.mail("alice@example.com")
        assert code == 530, "587 must want STARTTLS first"
        s.starttls(context=tls_context())
    with s:
        s.ehlo("client.test")
        code, text = s.mail(f"alice@{DOMAIN}")
        assert (code, text.decode()) == (530, replies.AUTH_REQUIRED[4:])


def test_wrong_password_is_refused(appliance: Appliance) -> None:
    with smtplib.SMTP_SSL(appliance.ip, 465, timeout=TIMEOUT_S, context=tls_context()) as s:
        s.ehlo("client.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", ALICE_PASSWORD + "x")
    assert e.value.smtp_code == 535


def test_the_bridge_subnet_is_not_a_local_network(appliance: Appliance) -> None:
    toml = appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout
    line = next(ln for ln in toml.splitlines() if ln.startswith("local_networks"))
    assert line == 'local_networks = ["127.0.0.0/8", "::1/128"]'


# -- issue 18: logged-in users send only as themselves; the lists are internal -----------


def _mail_from_as_alice(ip: str, sender: str) -> tuple[int, str]:
    with smtplib.SMTP(ip, 587, timeout=TIMEOUT_S) as s:
        s.ehlo("laptop.test")
        s.starttls(context=tls_context())
        s.ehlo("laptop.test")
        s.login("alice", ALICE_PASSWORD)
        code, text = s.mail(sender)
        if code == 250:
            s.rset()
        return code, text.decode()


def test_alice_on_587_may_send_only_as_herself_and_her_pseudonym(appliance: Appliance) -> None:
    from tests.e2e.plugins import changed

    changed(appliance, "appliance pseudonym add asmith alice", ready=False)
    try:
        own = _mail_from_as_alice(appliance.ip, f"alice@{DOMAIN}")
        pseudonym = _mail_from_as_alice(appliance.ip, f"asmith@{DOMAIN}")
        bounce = _mail_from_as_alice(appliance.ip, "<>")
        bob = _mail_from_as_alice(appliance.ip, f"bob@{DOMAIN}")
        ceo = _mail_from_as_alice(appliance.ip, "ceo@bigbank.test")
    finally:
        changed(appliance, "appliance pseudonym del asmith", ready=False)
    assert (own[0], pseudonym[0], bounce[0]) == (250, 250, 250)
    for (code, text), address in ((bob, f"bob@{DOMAIN}"), (ceo, "ceo@bigbank.test")):
        expected = replies.SENDER_NOT_OWNED.format(address=address, user="alice")
        assert (code, text) == (_code(expected), expected[4:])


def test_everyone_is_refused_to_the_internet(appliance: Appliance) -> None:
    address = f"everyone@{DOMAIN}"
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.test")
        s.mail("someone@remote.test")
        code, text = s.rcpt(address)
    expected = replies.INTERNAL_ONLY.format(address=address)
    assert (code, text.decode()) == (_code(expected), expected[4:])
