"""Password guessing on Dovecot's ports (IMAP, POP3) and at the webmail bans the
guesser's address there, through Dovecot's auth policy server: the client is told why,
`appliance ban remove` lifts it, and the right password works again."""

from __future__ import annotations

import poplib

from tests.e2e.conftest import ALICE_PASSWORD, CLIENT_IP, Appliance, wait_for
from tests.e2e.mail import imap_answer, tls_context, webmail_login
from tests.e2e.plugins import bannable, uid

MAX_FAILURES = 3
# Dovecot's own auth penalty (not a setting) also delays each failure from an address,
# 2, 4, 8 then 15 s, forgotten 29 s after the last: with its 2 s failure delay, a login
# after a burst of failures takes up to 17 s, the webmail's too.
TIMEOUT_S = 60
REASON = (f"Your address {CLIENT_IP} is banned ({MAX_FAILURES} failed logins in 10m): "
          "try again in ")


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


def logs(appliance: Appliance) -> str:
    return appliance.compose("logs", "--no-log-prefix", "--since", "5m", "appliance",
                             check=False).stdout


def test_wrong_imap_passwords_ban_the_address_on_imap_pop3_and_the_webmail(
        appliance: Appliance) -> None:
    with bannable(appliance, max_failures=MAX_FAILURES):
        answers = [imap_answer(appliance.ip, "alice", f"wrong-{i}")
                   for i in range(MAX_FAILURES)]
        assert all("AUTHENTICATIONFAILED" in a for a in answers), answers
        # banned now: the right password is refused before it is checked, with the reason
        refused = imap_answer(appliance.ip, "alice", ALICE_PASSWORD)
        assert f"[ALERT] {REASON}" in refused, refused
        assert pop3_login(appliance.ip, "alice", ALICE_PASSWORD).startswith(
            f"-ERR [AUTH] {REASON}")
        status, page = webmail_login(appliance.ip, "alice", ALICE_PASSWORD, timeout=TIMEOUT_S)
        assert status == 401 and REASON in page, (status, page[-2000:])
        wait_for(lambda: f"refused {CLIENT_IP} imap user=<alice>: banned" in logs(appliance),
                 30, "the policy server's line for the refused login")
        assert (f"banned {CLIENT_IP} for 1h after imap user=<alice>: {MAX_FAILURES} "
                "failed logins in 10m") in logs(appliance)

        lifted = appliance.exec("appliance", "ban", "remove", CLIENT_IP).stdout
        assert lifted.strip() == f"ban lifted: {CLIENT_IP}"
        assert imap_answer(appliance.ip, "alice", ALICE_PASSWORD) == "OK"
        assert webmail_login(appliance.ip, "alice", ALICE_PASSWORD, timeout=TIMEOUT_S)[0] == 302


def test_webmail_and_pop3_failures_count_against_the_browsers_address(
        appliance: Appliance) -> None:
    """Roundcube logs in from 127.0.0.1, which is never banned: its failures count
    against the visitor's address, which it passes on in IMAP ID."""
    with bannable(appliance, max_failures=MAX_FAILURES):
        for _ in range(MAX_FAILURES - 1):
            status, _ = webmail_login(appliance.ip, f"nobody{uid()}", "wrong", timeout=TIMEOUT_S)
            assert status == 401
        assert pop3_login(appliance.ip, "alice", "wrong").startswith("-ERR [AUTH]")
        listed = appliance.exec("appliance", "ban", "list").stdout
        assert any(line.startswith(CLIENT_IP + " ") for line in listed.splitlines()), listed
        assert f"[ALERT] {REASON}" in imap_answer(appliance.ip, "alice", ALICE_PASSWORD)
        appliance.exec("appliance", "ban", "remove", CLIENT_IP)
        assert pop3_login(appliance.ip, "alice", ALICE_PASSWORD) == "OK"
