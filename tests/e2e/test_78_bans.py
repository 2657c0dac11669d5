"""Password guessing on Dovecot's ports (IMAP, POP3) and at the webmail bans the
guesser's address there, through Dovecot's auth policy server: the client is told why,
`appliance ban remove` lifts it, and the right password works again."""

from __future__ import annotations

import http.cookiejar
import imaplib
import poplib
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.conftest import ALICE_PASSWORD, CLIENT_IP, Appliance, wait_for
from tests.e2e.mail import tls_context
from tests.e2e.plugins import changed, uid

MAX_FAILURES = 3
# Dovecot's own auth penalty (not a setting) also delays each failure from an address,
# 2, 4, 8 then 15 s, forgotten 29 s after the last: with its 2 s failure delay, a login
# after a burst of failures takes up to 17 s, the webmail's too.
TIMEOUT_S = 60
REASON = (f"Your address {CLIENT_IP} is banned ({MAX_FAILURES} failed logins in 10m): "
          "try again in ")


@contextmanager
def bannable(appliance: Appliance) -> Iterator[None]:
    """The host's address may be banned after MAX_FAILURES failures, without the
    growing delays; afterwards any ban on it is lifted and the suite's settings are
    back (the container and the host's address are shared by every test)."""
    changed(appliance, "appliance config set security.failure_delay 0",
            f"appliance config set security.max_failures {MAX_FAILURES}",
            "appliance config unset security.never_ban", ready=False)
    appliance.exec("appliance", "ban", "remove", CLIENT_IP, check=False)
    try:
        yield
    finally:
        appliance.exec("appliance", "ban", "remove", CLIENT_IP, check=False)
        changed(appliance, f"appliance config set security.never_ban {CLIENT_IP}/32",
                "appliance config unset security.max_failures",
                "appliance config unset security.failure_delay", ready=False)


def imap_login(ip: str, user: str, password: str) -> str:
    """'OK', or the tagged NO line's text as Dovecot sent it."""
    box = imaplib.IMAP4_SSL(ip, 993, ssl_context=tls_context(), timeout=TIMEOUT_S)
    try:
        box.login(user, password)
        return "OK"
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        try:
            box.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def pop3_login(ip: str, user: str, password: str) -> str:
    box = poplib.POP3_SSL(ip, 995, context=tls_context(), timeout=TIMEOUT_S)
    try:
        box.user(user)
        box.pass_(password)
        return "OK"
    except poplib.error_proto as e:
        return e.args[0].decode(errors="replace")
    finally:
        try:
            box.quit()
        except (poplib.error_proto, OSError):
            pass


def webmail_login(ip: str, user: str, password: str) -> tuple[int, str]:
    """Roundcube's answer to the login form: (HTTP status, page)."""
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=tls_context()),
                                         NoRedirect())
    base = f"https://{ip}/webmail/"
    page = opener.open(base, timeout=TIMEOUT_S).read().decode()
    token = re.search(r'name="_token" value="([^"]+)"', page)
    assert token, "no request token on the login page"
    form = urllib.parse.urlencode({"_token": token[1], "_task": "login", "_action": "login",
                                   "_timezone": "UTC", "_url": "", "_user": user,
                                   "_pass": password}).encode()
    try:
        with opener.open(base + "?_task=login", data=form, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:  # 401 on a failed login, 302 on success
        return e.code, e.read().decode(errors="replace")


def logs(appliance: Appliance) -> str:
    return appliance.compose("logs", "--no-log-prefix", "--since", "5m", "appliance",
                             check=False).stdout


def test_wrong_imap_passwords_ban_the_address_on_imap_pop3_and_the_webmail(
        appliance: Appliance) -> None:
    with bannable(appliance):
        answers = [imap_login(appliance.ip, "alice", f"wrong-{i}")
                   for i in range(MAX_FAILURES)]
        assert all("AUTHENTICATIONFAILED" in a for a in answers), answers
        # banned now: the right password is refused before it is checked, with the reason
        refused = imap_login(appliance.ip, "alice", ALICE_PASSWORD)
        assert f"[ALERT] {REASON}" in refused, refused
        assert pop3_login(appliance.ip, "alice", ALICE_PASSWORD).startswith(
            f"-ERR [AUTH] {REASON}")
        status, page = webmail_login(appliance.ip, "alice", ALICE_PASSWORD)
        assert status == 401 and REASON in page, (status, page[-2000:])
        wait_for(lambda: f"refused {CLIENT_IP} imap user=<alice>: banned" in logs(appliance),
                 30, "the policy server's line for the refused login")
        assert (f"banned {CLIENT_IP} for 1h after imap user=<alice>: {MAX_FAILURES} "
                "failed logins in 10m") in logs(appliance)

        lifted = appliance.exec("appliance", "ban", "remove", CLIENT_IP).stdout
        assert lifted.strip() == f"ban lifted: {CLIENT_IP}"
        assert imap_login(appliance.ip, "alice", ALICE_PASSWORD) == "OK"
        assert webmail_login(appliance.ip, "alice", ALICE_PASSWORD)[0] == 302


def test_webmail_and_pop3_failures_count_against_the_browsers_address(
        appliance: Appliance) -> None:
    """Roundcube logs in from 127.0.0.1, which is never banned: its failures count
    against the visitor's address, which it passes on in IMAP ID."""
    with bannable(appliance):
        for _ in range(MAX_FAILURES - 1):
            status, _ = webmail_login(appliance.ip, f"nobody{uid()}", "wrong")
            assert status == 401
        assert pop3_login(appliance.ip, "alice", "wrong").startswith("-ERR [AUTH]")
        listed = appliance.exec("appliance", "ban", "list").stdout
        assert any(line.startswith(CLIENT_IP + " ") for line in listed.splitlines()), listed
        assert f"[ALERT] {REASON}" in imap_login(appliance.ip, "alice", ALICE_PASSWORD)
        appliance.exec("appliance", "ban", "remove", CLIENT_IP)
        assert pop3_login(appliance.ip, "alice", ALICE_PASSWORD) == "OK"
