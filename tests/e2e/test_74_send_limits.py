"""What a logged-in user may send (limits.*): past the hourly limit MAIL gets 451 and
what was sent before is delivered; and the tarpit slows RCPTs after refused ones."""

from __future__ import annotations

import smtplib
import time

from tests.e2e.conftest import CLIENT_IP, DOMAIN, Appliance, wait_for
from tests.e2e.mail import TIMEOUT_S, message, tls_context
from tests.e2e.plugins import add_user, changed, configured, delivered, uid

PASSWORD = "Limit-e2e-passw0rd!"


def submission_reloads(appliance: Appliance) -> int:
    logs = appliance.compose("logs", "appliance", check=False).stdout
    return logs.count("submission: settings reloaded")


def test_a_user_past_their_hourly_limit_gets_451_and_earlier_mail_is_delivered(
        appliance: Appliance) -> None:
    name = f"lim{uid()[:6]}"
    before = submission_reloads(appliance)
    add_user(appliance, name, PASSWORD)
    changed(appliance, f"appliance config set users.{name}.messages_per_hour 2", ready=False)
    # `changed` waits for port 25: 587 is a process of its own, reloaded for each change
    wait_for(lambda: submission_reloads(appliance) >= before + 2, 30,
             "the submission daemon to reload twice")
    subjects = [f"limit-{uid()}" for _ in range(3)]
    with smtplib.SMTP(appliance.ip, 587, timeout=TIMEOUT_S) as s:
        s.starttls(context=tls_context())
        s.login(name, PASSWORD)
        for subject in subjects[:2]:
            assert s.send_message(message(f"{name}@{DOMAIN}", f"alice@{DOMAIN}",
                                          subject)) == {}
        code, text = s.mail(f"{name}@{DOMAIN}")
        s.rset()
    assert code == 451, text
    assert text.decode().startswith(f"4.7.1 {name} has sent 2 messages in the last hour")
    for subject in subjects[:2]:
        delivered(appliance, subject)
    logs = appliance.compose("logs", "appliance", check=False).stdout
    assert f"{name} {CLIENT_IP}: send limit reached, 2 messages in the last hour " \
        "(limit 2), MAIL refused" in logs
    status = appliance.exec("appliance", "status", check=False).stdout
    assert f"send limit: {name} sent 2 of 2 this hour (reached: MAIL gets 451)" in status
    appliance.exec("appliance", "user", "del", name, "--purge")


def test_rcpts_after_refused_ones_wait_the_tarpit_delay(appliance: Appliance) -> None:
    with configured(appliance, smtpd__tarpit_count="2", smtpd__tarpit_delay="2"):
        with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
            s.ehlo("mx.remote.test")
            assert s.mail("someone@remote.test")[0] == 250
            took = []
            for rcpt in (f"nobody1-{uid()}@{DOMAIN}", f"nobody2-{uid()}@{DOMAIN}",
                         f"nobody3-{uid()}@{DOMAIN}", f"alice@{DOMAIN}"):
                start = time.monotonic()
                code, _ = s.rcpt(rcpt)
                took.append((code, time.monotonic() - start))
    codes = [c for c, _ in took]
    assert codes == [550, 550, 550, 250], took
    fast, slow = [t for _, t in took[:2]], [t for _, t in took[2:]]
    print(f"tarpit: RCPT times {[round(t, 3) for _, t in took]} s")
    assert all(t < 2 for t in fast), took
    assert all(t >= 2 for t in slow), took
