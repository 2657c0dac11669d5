"""Fault 4 (issue 8): the data volume fills up.

A second project ("appliance-e2e-full", compose.volume-full.yaml) runs the appliance on
a 64 MB tmpfs data volume, so the test can fill it for real with a file. Below Postfix's
queue_minfree (1.5 x the message size limit) mail is refused with 452 4.3.1, at MAIL
when the space is already short and at the end of DATA when it ran out during the
upload; nothing is half-queued, and the same message goes through once space returns.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, ROOT, Appliance, start_appliance
from tests.e2e.mail import TIMEOUT_S, tls_context
from tests.e2e.plugins import body, dialogue, queue_drained, uid

pytestmark = pytest.mark.e2e

COMPOSE_FULL = [
    "docker", "compose", "-p", "appliance-e2e-full",
    "-f", str(ROOT / "compose.yaml"), "-f", str(ROOT / "tests/e2e/compose.volume-full.yaml"),
]
DATA = "/var/lib/appliance"
FILLER = f"{DATA}/filler"
INSUFFICIENT = (452, "4.3.1 Insufficient system storage")


@pytest.fixture(scope="module")
def small(appliance: Appliance) -> Iterator[Appliance]:
    """The appliance on a small volume. Needs the main project only for its test DNS
    zones (E2E_STATE), which this project's DNS peer serves too."""
    app = start_appliance(COMPOSE_FULL)
    try:
        yield app
    finally:
        if not os.environ.get("E2E_KEEP"):
            subprocess.run([*COMPOSE_FULL, "down", "-v", "--remove-orphans"],
                           capture_output=True, check=False, timeout=240)


def available(app: Appliance) -> int:
    out = app.exec("df", "-B1", "--output=avail", DATA).stdout.split()
    return int(out[-1])


def min_free(app: Appliance) -> int:
    return int(app.exec("postconf", "-h", "queue_minfree").stdout.strip())


def fill(app: Appliance, leave: int) -> None:
    """Take all but `leave` bytes of the volume with one file."""
    app.exec("fallocate", "-l", str(available(app) - leave), FILLER)
    assert available(app) <= leave


def free_space(app: Appliance) -> None:
    app.exec("rm", "-f", FILLER)


def inbox_count(app: Appliance, subject: str) -> int:
    import imaplib

    box = imaplib.IMAP4(app.ip, 143, timeout=TIMEOUT_S)
    try:
        box.starttls(ssl_context=tls_context())
        box.login("alice", ALICE_PASSWORD)
        box.select("INBOX", readonly=True)
        _, data = box.search(None, "SUBJECT", f'"{subject}"')
        return len(data[0].split())
    finally:
        box.logout()


def test_a_full_volume_refuses_mail_with_452_and_takes_it_once_space_returns(
    small: Appliance,
) -> None:
    app = small
    short = min_free(app) // 2
    subject = f"full-{uid()}"
    fill(app, leave=short)
    try:
        refused = dialogue(app.ip, data=body(subject))
        assert refused.replies["mail"] == INSUFFICIENT, refused.replies
        # an authenticated client is refused the same way, before it sends a byte of body
        with smtplib.SMTP(app.ip, 587, timeout=TIMEOUT_S) as s:
            s.starttls(context=tls_context())
            s.login("alice", ALICE_PASSWORD)
            code, text = s.mail(f"alice@{DOMAIN}")
            assert (code, text.decode()) == INSUFFICIENT
        status = app.exec("appliance", "status", check=False)
        assert status.returncode == 1 and "452 4.3.1" in status.stdout, status.stdout
        assert app.queue() == []
    finally:
        free_space(app)
    accepted = dialogue(app.ip, data=body(subject))
    assert accepted.code("data") == 250, accepted.replies
    queue_drained(app)
    assert inbox_count(app, subject) == 1
    assert app.exec("appliance", "status", check=False).returncode == 0


def test_space_running_out_during_the_upload_gets_452_and_queues_nothing(
    small: Appliance,
) -> None:
    """MAIL is taken while there is room; the volume fills while the body is on the wire.
    The hand-off to Postfix then meets its own queue_minfree check: the client gets
    Postfix's 452 4.3.1 after the final dot, and no part of the message is queued."""
    app = small
    subject = f"filled-during-{uid()}"
    raw = body(subject, text="x" * 200 + "\n")
    s = smtplib.SMTP(app.ip, 25, timeout=TIMEOUT_S)
    try:
        s.ehlo("mx.remote.test")
        assert s.mail("someone@remote.test")[0] == 250
        assert s.rcpt(f"alice@{DOMAIN}")[0] == 250
        s.putcmd("DATA")
        assert s.getreply()[0] == 354
        s.send(raw[: len(raw) // 2])
        fill(app, leave=min_free(app) // 2)
        s.send(raw[len(raw) // 2 :] + b"\r\n.\r\n")
        code, text = s.getreply()
        assert (code, text.decode()) == INSUFFICIENT
        s.quit()
    finally:
        s.close()
        free_space(app)
    assert app.queue() == []
    assert inbox_count(app, subject) == 0
    # the client retries the whole message: delivered exactly once
    assert dialogue(app.ip, data=raw).code("data") == 250
    queue_drained(app)
    assert inbox_count(app, subject) == 1
