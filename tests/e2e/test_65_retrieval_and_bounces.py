"""E-mail retrieval from a secondary mail server (SME fetchmail: ETRN and multidrop) and
the bounce sender and text, against the running container and the test network's
secondary server (the sink: ETRN on 25, the multidrop POP3 box on 110)."""

from __future__ import annotations

import email
import email.policy

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, SINK_IP, STATE, Appliance
from tests.e2e.mail import date_now, imap_message
from tests.e2e.plugins import add_user, delivered, settings, submit, uid

ALICE = f"alice@{DOMAIN}"
DROP_PASSWORD = 'drop"pass\\1'  # tests/e2e/peers/maildrop.py: fetchmail's quoting, for real
ERIN_PASSWORD = "Erin-e2e-passw0rd"
DATE = f"Date: {date_now()}\r\n"


def held_for(domain: str, subject: str) -> None:
    """A message the secondary server keeps for `domain` until it is asked (ETRN)."""
    folder = STATE / "held" / domain
    folder.mkdir(parents=True, exist_ok=True)
    text = (f"From: backup@remote.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n{DATE}"
            f"Message-ID: <{subject}@remote.test>\r\n\r\nKept while the office was offline.\r\n")
    (folder / f"{subject}.eml").write_bytes(text.encode())


def in_the_drop(name: str, envelope_to: str, subject: str) -> None:
    """A message in the ISP's multidrop box; only Delivered-To says whose it is."""
    (STATE / "drop").mkdir(exist_ok=True)
    text = (f"Return-Path: <news@remote.test>\r\nDelivered-To: {envelope_to}\r\n"
            f"From: news@remote.test\r\nTo: subscribers@lists.remote.test\r\n"
            f"Subject: {subject}\r\n{DATE}Message-ID: <{subject}@remote.test>\r\n\r\n"
            "Hello.\r\n")
    (STATE / "drop" / f"{name}.eml").write_bytes(text.encode())


def sme(appliance: Appliance, command: str) -> None:
    appliance.exec("sh", "-c", command)


def test_etrn_on_the_office_schedule_brings_the_secondary_servers_mail(
        appliance: Appliance) -> None:
    subject = f"etrn-{uid()}"
    held_for(DOMAIN, subject)
    # SME's own commands, verbatim: the scheduler picks the change up at its next tick.
    sme(appliance, f"config setprop fetchmail SecondaryMailServer {SINK_IP} "
                   "FreqOffice every5min FreqOutside every5min FreqWeekend every5min "
                   "Method etrn status enabled && signal-event email-update")
    try:
        got = delivered(appliance, subject, timeout=150)
        assert b"Kept while the office was offline." in got
        log = (STATE / "etrn.log").read_text()
        assert f"ETRN {DOMAIN} from {appliance.ip}" in log
        assert not list((STATE / "held" / DOMAIN).glob("*.eml"))
    finally:
        sme(appliance, "config setprop fetchmail status disabled Method standard && "
                       "config delprop fetchmail SecondaryMailServer FreqOffice FreqOutside "
                       "FreqWeekend && signal-event email-update")


def test_multidrop_sorts_the_isp_mailbox_by_its_envelope_header(appliance: Appliance) -> None:
    tag = uid()
    # erin is not the admin: mail that fetchmail could not sort would go to the admin
    # (alice), so erin's copy arriving in erin's box proves the Delivered-To sorting.
    erin = add_user(appliance, "erin", ERIN_PASSWORD)
    in_the_drop("a", erin, f"drop-{tag}-erin")
    in_the_drop("b", f"postmaster@{DOMAIN}", f"drop-{tag}-postmaster")
    with settings(appliance, ("fetchmail.secondary_mail_server", SINK_IP),
                  ("fetchmail.account", "office"), ("fetchmail.password", DROP_PASSWORD),
                  ("fetchmail.sort_header", "Delivered-To"), ("fetchmail.tls", "none"),
                  ("fetchmail.freq_office", "never"), ("fetchmail.freq_outside", "never"),
                  ("fetchmail.freq_weekend", "never"), ("fetchmail.method", "multidrop"),
                  ("fetchmail.enabled", "true")):
        run = appliance.exec("appliance", "fetchmail")
        assert "2 messages" in run.stdout, run.stdout
        assert DROP_PASSWORD not in run.stdout  # the transcript hides the password
        delivered(appliance, f"drop-{tag}-erin", user="erin", password=ERIN_PASSWORD)
        # postmaster@ is the admin, alice: sorted by Delivered-To, not by To
        delivered(appliance, f"drop-{tag}-postmaster")
        assert imap_message(appliance.ip, "alice", ALICE_PASSWORD, f"drop-{tag}-erin") is None
        assert not list((STATE / "drop").glob("*.eml"))  # fetched, then deleted
        # Nothing left: fetchmail says so and that is not an error.
        assert appliance.exec("appliance", "fetchmail").returncode == 0


def test_a_wrong_password_is_a_failure_the_admin_can_see(appliance: Appliance) -> None:
    with settings(appliance, ("fetchmail.secondary_mail_server", SINK_IP),
                  ("fetchmail.account", "office"), ("fetchmail.password", "wrong"),
                  ("fetchmail.tls", "none"), ("fetchmail.freq_office", "never"),
                  ("fetchmail.freq_outside", "never"), ("fetchmail.freq_weekend", "never"),
                  ("fetchmail.method", "multidrop"), ("fetchmail.enabled", "true")):
        run = appliance.exec("appliance", "fetchmail", check=False)
        assert run.returncode == 1
        assert "failed with exit 3" in run.stdout  # fetchmail(1): 3 is an auth failure


def test_bounces_carry_the_configured_sender_subject_and_text(appliance: Appliance) -> None:
    tag = uid()
    with settings(appliance, ("queue.bounce_from", "postmaster"),
                  ("queue.bounce_subject", f"Returned mail {tag}"),
                  ("queue.bounce_text", "Your message could not reach our partner.\n"
                                        "Call the office on 555-0100 ($5 a minute).")):
        assert submit(appliance, ALICE, f"unknown-{tag}@remote.test", f"lost-{tag}") == {}
        raw = delivered(appliance, f"Returned mail {tag}")
        bounce = email.message_from_bytes(raw, policy=email.policy.default)
        assert bounce["From"].addresses[0].addr_spec == f"postmaster@{DOMAIN}"
        text = bounce.get_body(("plain",)).get_content()
        assert "Call the office on 555-0100 ($5 a minute)." in text
        assert f"unknown-{tag}@remote.test" in raw.decode(errors="replace")
        assert bounce["Return-Path"] == "<>"  # a bounce never bounces back


def test_a_bounce_text_postfix_would_misread_is_refused(appliance: Appliance) -> None:
    run = appliance.exec("appliance", "config", "set", "queue.bounce_text", "a\nEOF\nb",
                         check=False)
    assert run.returncode != 0 and "EOF" in run.stderr + run.stdout
    assert appliance.exec("postconf", "-h", "bounce_template_file").stdout.strip() == ""
