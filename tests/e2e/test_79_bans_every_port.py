"""Password guessing on 587 bans the guesser's address on every port, not the users:
a right password from another address still works, `appliance ban remove` lifts it."""

from __future__ import annotations

import base64
import smtplib

from tests.e2e.conftest import ALICE_PASSWORD, CLIENT_IP, Appliance
from tests.e2e.mail import TIMEOUT_S, tls_context
from tests.e2e.plugins import bannable

PEER_LOGIN = f"""
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("{{ip}}", 587, timeout={TIMEOUT_S}) as s:
    s.starttls(context=ctx)
    print(s.login("alice", {ALICE_PASSWORD!r})[0])
"""


def login_587(ip: str, password: str) -> tuple[int, str]:
    """The reply to AUTH, or to the greeting when the server refuses the connection."""
    blob = base64.b64encode(f"\0alice\0{password}".encode()).decode()
    try:
        with smtplib.SMTP(ip, 587, timeout=TIMEOUT_S) as s:
            s.starttls(context=tls_context())
            s.ehlo()
            # one AUTH each (smtplib's login() tries the next mechanism after a 535)
            code, text = s.docmd("AUTH", f"PLAIN {blob}")
            return code, text.decode(errors="replace")
    except smtplib.SMTPConnectError as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")
    except smtplib.SMTPServerDisconnected as e:
        return 0, str(e)


def greeting(ip: str, port: int) -> tuple[int, str]:
    try:
        with smtplib.SMTP(ip, port, timeout=TIMEOUT_S) as s:
            code, text = s.noop()
            return 220, text.decode()
    except smtplib.SMTPConnectError as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")


def peer(appliance: Appliance, script: str) -> str:
    """Run SCRIPT in the sink container: another address on the test network."""
    proc = appliance.compose("exec", "-T", "sink", "/opt/appliance/bin/python", "-c",
                             script.replace("{ip}", appliance.ip), check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_twelve_wrong_passwords_on_587_ban_the_address_on_every_port(
        appliance: Appliance) -> None:
    with bannable(appliance):
        answers = [login_587(appliance.ip, f"wrong-{i}") for i in range(12)]
        assert [c for c, _ in answers[:9]] == [535] * 9, answers
        code, text = answers[9]  # the tenth failure bans, and says so
        assert code == 421 and f"{CLIENT_IP} is banned for 1h" in text, answers[9]
        for code, text in answers[10:]:  # refused before AUTH from now on
            assert code == 421 and "is banned for" in text and "10 failed logins" in text
        # every SMTP port, the right password too
        assert login_587(appliance.ip, ALICE_PASSWORD)[0] == 421
        code, text = greeting(appliance.ip, 25)
        assert code == 421 and "banned" in text
        # not the user: alice logs in from another address
        assert peer(appliance, PEER_LOGIN) == "235"

        listed = appliance.exec("appliance", "ban", "list").stdout
        line = next(x for x in listed.splitlines() if x.startswith(CLIENT_IP + " "))
        assert "10 failed logins in 10m" in line and "submission user 'alice'" in line
        logs = appliance.compose("logs", "appliance", check=False).stdout
        assert f"submission {CLIENT_IP} banned for 1h: 10 failed logins" in logs

        lifted = appliance.exec("appliance", "ban", "remove", CLIENT_IP).stdout
        assert lifted.strip() == f"ban lifted: {CLIENT_IP}"
        assert login_587(appliance.ip, ALICE_PASSWORD)[0] == 235
