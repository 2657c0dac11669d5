"""App passwords (`appliance user app-password`): one logs in to IMAP, POP3 and SMTP
submission as the user, is named in each login's log line, is refused by the webmail
with the reason, and stops working once removed."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.e2e.conftest import CLIENT_IP, DOMAIN, Appliance, wait_for
from tests.e2e.mail import (
    TIMEOUT_S,
    ManageSieve,
    imap_login,
    imap_subjects,
    message,
    pop3_subjects,
    tls_context,
    webmail_login,
)
from tests.e2e.plugins import add_user, delivered, uid

USER = "pia"
PASSWORD = "Pia-e2e-passw0rd-own"


def smtp_login(appliance: Appliance, password: str) -> bool:
    with smtplib.SMTP(appliance.ip, 587, timeout=TIMEOUT_S) as s:
        s.starttls(context=tls_context())
        try:
            s.login(USER, password)
        except smtplib.SMTPAuthenticationError:
            return False
        return True




def logs(appliance: Appliance) -> str:
    return appliance.compose("logs", "--no-log-prefix", "--since", "5m", "appliance").stdout


@pytest.fixture(scope="module")
def pia(appliance: Appliance) -> str:
    add_user(appliance, USER, PASSWORD)
    return f"{USER}@{DOMAIN}"


def test_an_app_password_logs_in_to_imap_pop3_and_submission_but_not_the_webmail(
        appliance: Appliance, pia: str) -> None:
    out = appliance.exec("appliance", "user", "app-password", "add", USER, "phone").stdout
    app = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}", app), out
    listed = appliance.exec("appliance", "user", "app-password", "list", USER).stdout
    assert re.fullmatch(r"phone\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", listed)
    assert app not in appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout

    # SMTP submission on 587 with STARTTLS, as the real user (sender_login: pia@ only)
    wait_for(lambda: smtp_login(appliance, app), 30, "587 to take the app password")
    subject = f"sent with an app password {uid()}"
    with smtplib.SMTP(appliance.ip, 587, timeout=TIMEOUT_S) as s:
        s.starttls(context=tls_context())
        s.login(USER, app)
        assert s.send_message(message(pia, pia, subject)) == {}
    delivered(appliance, subject, USER, app)  # IMAP (143, STARTTLS) with it
    assert subject in imap_subjects(appliance.ip, USER, app, port=993)
    assert subject in pop3_subjects(appliance.ip, USER, app, port=995)
    assert not imap_login(appliance.ip, USER, "wrong-wrong-wrong-wrong")

    # each login names the app password: the SMTP daemon's and Dovecot's
    wait_for(lambda: (text := logs(appliance)) and
             f"AUTH ok for '{USER}' as {USER} with app-password phone" in text and
             re.search(rf"imap-login: Info: Logged in: user=<{USER}>.* app-password=phone",
                       text) and
             re.search(rf"pop3-login: Info: Logged in: user=<{USER}>.* app-password=phone",
                       text), 30, "the logins with the app password in the log")

    # ManageSieve refuses it (a device's password must not install redirects)
    sieve = ManageSieve(appliance.ip)
    try:
        sieve.starttls(tls_context(), appliance.ip)
        assert sieve.authenticate(USER, app).startswith("NO")
        assert sieve.authenticate(USER, PASSWORD).startswith("OK")
    finally:
        sieve.close()

    # the webmail refuses it, saying why; the user's own password still logs in
    code, page = webmail_login(appliance.ip, USER, app)
    assert code == 401 and "This is an app password" in page
    wait_for(lambda: f"App password phone of {USER} refused at the webmail" in logs(appliance),
             30, "the webmail's refusal in the log")
    code, _ = webmail_login(appliance.ip, USER, PASSWORD)
    assert code == 302
    # Roundcube's IMAP login (from loopback, for the browser's address) with the user's
    # own password names no app password
    wait_for(lambda: any(f"Logged in: user=<{USER}>" in line
                         and re.search(r"lip=(127\.0\.0\.1|::1),", line)
                         and f"rip={CLIENT_IP}" in line and "app-password" not in line
                         for line in logs(appliance).splitlines()),
             30, "the webmail's own-password login in Dovecot's log")


def test_a_removed_app_password_no_longer_logs_in(appliance: Appliance, pia: str) -> None:
    out = appliance.exec("appliance", "user", "app-password", "add", USER, "laptop").stdout
    app = out.strip().splitlines()[-1]
    wait_for(lambda: imap_login(appliance.ip, USER, app), 30, "IMAP to take the app password")
    wait_for(lambda: smtp_login(appliance, app), 30, "587 to take the app password")

    appliance.exec("appliance", "user", "app-password", "remove", USER, "laptop")
    assert "laptop" not in appliance.exec("appliance", "user", "app-password", "list",
                                          USER).stdout
    wait_for(lambda: not imap_login(appliance.ip, USER, app), 30, "IMAP to refuse it")
    wait_for(lambda: not smtp_login(appliance, app), 30, "587 to refuse it")
    assert imap_login(appliance.ip, USER, PASSWORD)  # the user's own password is untouched
