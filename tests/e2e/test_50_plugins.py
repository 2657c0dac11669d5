"""The qpsmtpd plugins in real SMTP sessions against the container.

Our client connects from the test network's gateway (198.51.100.1), which the appliance
treats as the internet. Every DNS answer comes from the test DNS server (zones set per
test); names are unique per test because the daemons cache answers.
"""

from __future__ import annotations

import pytest

from appliance.smtpd import replies
from tests.e2e.conftest import (
    ALICE_PASSWORD,
    CLIENT_IP,
    DOMAIN,
    Appliance,
    TestDNS,
    sink_messages,
    wait_for,
)
from tests.e2e.mail import date_now
from tests.e2e.plugins import body, configured, delivered, dialogue, submit, uid

ALICE = f"alice@{DOMAIN}"
REVERSED_CLIENT = ".".join(reversed(CLIENT_IP.split(".")))


def remote_domain(zones: TestDNS, name: str) -> str:
    """A sender domain that resolves (so resolvable_fromhost lets it through)."""
    zones.set(name, "MX", "10 sink.remote.test.")
    return name


# -- DNS block lists ---------------------------------------------------------------------


def test_dnsbl_listed_client_is_refused_at_mail_with_the_lists_reason(
    appliance: Appliance, zones: TestDNS
) -> None:
    zone = f"bl{uid()}.test"
    zones.set(f"{REVERSED_CLIENT}.{zone}", "A", "127.0.0.2")
    zones.set(f"{REVERSED_CLIENT}.{zone}", "TXT", "Listed for the e2e tests")
    with configured(appliance, smtpd__dnsbl__enabled="true", smtpd__dnsbl__zones=zone):
        d = dialogue(appliance.ip)
    # naughty: the refusal waits for MAIL so the log has the sender
    assert d.code("ehlo") == 250
    assert d.code("mail") == 550, d.replies
    assert "Listed for the e2e tests" in d.text("mail")


def test_whitelisted_host_passes_a_dnsbl_listing(appliance: Appliance, zones: TestDNS) -> None:
    zone = f"wl{uid()}.test"
    zones.set(f"{REVERSED_CLIENT}.{zone}", "A", "127.0.0.2")
    with configured(appliance, smtpd__dnsbl__enabled="true", smtpd__dnsbl__zones=zone,
                    smtpd__whitelists__hosts=f"{CLIENT_IP}/32"):
        subject = f"whitelisted-{uid()}"
        d = dialogue(appliance.ip, data=body(subject))
    assert d.code("mail") == 250 and d.code("data") == 250, d.replies
    delivered(appliance, subject)


def test_dnsbl_a_record_zone_gives_its_custom_message_with_the_ip(
    appliance: Appliance, zones: TestDNS
) -> None:
    zone = f"abl{uid()}.test"
    zones.set(f"{REVERSED_CLIENT}.{zone}", "A", "127.0.0.2")
    with configured(appliance, smtpd__dnsbl__enabled="true",
                    smtpd__dnsbl__zones=[f"{zone}:Blocked - see http://{zone}/q?ip=%IP%"]):
        d = dialogue(appliance.ip)
    assert d.code("mail") == 550
    assert f"http://{zone}/q?ip={CLIENT_IP}" in d.text("mail")


def test_dnsbl_that_times_out_never_refuses(appliance: Appliance, zones: TestDNS) -> None:
    with configured(appliance, smtpd__dnsbl__enabled="true", smtpd__dnsbl__zones="timeout.test"):
        d = dialogue(appliance.ip, data=body(f"dnsbl-timeout-{uid()}"))
    assert d.code("mail") == 250
    assert d.code("data") == 250, d.replies


def test_dnsbl_not_listed_passes(appliance: Appliance, zones: TestDNS) -> None:
    with configured(appliance, smtpd__dnsbl__enabled="true",
                    smtpd__dnsbl__zones=f"empty{uid()}.test"):
        subject = f"dnsbl-clean-{uid()}"
        d = dialogue(appliance.ip, data=body(subject))
    assert d.code("data") == 250
    delivered(appliance, subject)


def test_rhsbl_listed_sender_domain_is_refused(appliance: Appliance, zones: TestDNS) -> None:
    zone = f"rhs{uid()}.test"
    sender_domain = remote_domain(zones, f"spamsender{uid()}.test")
    zones.set(f"{sender_domain}.{zone}", "A", "127.0.0.2")
    with configured(appliance, smtpd__rhsbl__enabled="true", smtpd__rhsbl__zones=zone):
        d = dialogue(appliance.ip, sender=f"x@{sender_domain}")
    assert d.code("mail") == 550, d.replies


def test_uribl_link_in_the_body_is_refused_after_data(appliance: Appliance,
                                                       zones: TestDNS) -> None:
    zone = f"uri{uid()}.test"
    bad = f"badlink{uid()}.com"  # link domains need a real public suffix to be looked up
    zones.set(f"{bad}.{zone}", "A", "127.0.0.2")
    with configured(appliance, smtpd__uribl__enabled="true", smtpd__uribl__zones=zone):
        d = dialogue(appliance.ip, data=body(f"uribl-{uid()}",
                                             text=f"Click http://www.{bad}/offer now\n"))
    assert d.code("data") == 550, d.replies
    assert bad in d.text("data")


def test_uribl_bitmask_only_counts_the_listed_bits(appliance: Appliance,
                                                   zones: TestDNS) -> None:
    zone = f"multi{uid()}.test"
    masked, hit = f"masked{uid()}.com", f"hit{uid()}.net"
    zones.set(f"{masked}.{zone}", "A", "127.0.0.2")  # bit 2: not in 8-16
    zones.set(f"{hit}.{zone}", "A", "127.0.0.8")
    with configured(appliance, smtpd__uribl__enabled="true",
                    smtpd__uribl__zones=f"{zone}:8-16"):
        ok = dialogue(appliance.ip, data=body(f"uribl-mask-{uid()}",
                                              text=f"see http://{masked}/\n"))
        refused = dialogue(appliance.ip, data=body(f"uribl-hit-{uid()}",
                                                   text=f"see http://{hit}/\n"))
    assert ok.code("data") == 250
    assert refused.code("data") == 550


def test_unresolvable_sender_domain_is_refused_and_a_timeout_deferred(
    appliance: Appliance,
) -> None:
    gone = dialogue(appliance.ip, sender=f"x@nowhere{uid()}.test")
    assert gone.code("mail") == 550, gone.replies
    slow = dialogue(appliance.ip, sender=f"x@host{uid()}.timeout.test")
    assert slow.code("mail") == 451, slow.replies


# -- HELO, early talkers, unknown commands ------------------------------------------------


def test_helo_localhost_from_outside_is_refused_at_mail(appliance: Appliance) -> None:
    d = dialogue(appliance.ip, helo="localhost")
    assert d.code("ehlo") == 250
    assert d.code("mail") == 550, d.replies


def test_helo_strict_needs_forward_dns(appliance: Appliance, zones: TestDNS) -> None:
    with configured(appliance, smtpd__helo__policy="strict"):
        d = dialogue(appliance.ip, helo=f"no-such-host{uid()}.test")
    assert d.code("mail") == 550, d.replies


def test_an_early_talker_is_refused(appliance: Appliance) -> None:
    import socket

    # remember=0: our address has waited politely before and would be greeted at once
    with configured(appliance, smtpd__earlytalker__remember="0"), \
            socket.create_connection((appliance.ip, 25), timeout=15) as sock:
        sock.sendall(b"EHLO impatient.test\r\n")  # before the greeting
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220")
        while f.readline().startswith(b"250-"):
            pass
        sock.sendall(b"MAIL FROM:<x@remote.test>\r\n")
        assert f.readline().startswith(b"554"), "early talker was not refused at MAIL"


def test_unrecognized_command_flood_is_cut_off(appliance: Appliance) -> None:
    import socket

    with socket.create_connection((appliance.ip, 25), timeout=15) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220")
        answers = []
        for i in range(6):
            try:
                sock.sendall(f"BOGUS{i}\r\n".encode())
                line = f.readline()
            except OSError:  # closed by the server
                break
            if not line:
                break
            answers.append(line[:3])
    assert answers[:3] == [b"500"] * 3
    assert answers[3] == b"521", answers  # the 4th, then the connection is closed
    assert len(answers) == 4


# -- SPF, DKIM, DMARC ---------------------------------------------------------------------


def test_spf_fail_is_refused_only_without_a_dmarc_record(appliance: Appliance,
                                                         zones: TestDNS) -> None:
    plain = remote_domain(zones, f"spf{uid()}.test")
    zones.set(plain, "TXT", "v=spf1 ip4:192.0.2.1 -all")
    with_dmarc = remote_domain(zones, f"spfd{uid()}.test")
    zones.set(with_dmarc, "TXT", "v=spf1 ip4:192.0.2.1 -all")
    zones.set(f"_dmarc.{with_dmarc}", "TXT", "v=DMARC1; p=none")
    with configured(appliance, smtpd__spf__reject_policy="1"):
        refused = dialogue(appliance.ip, sender=f"x@{plain}")
        subject = f"spf-dmarc-{uid()}"
        passed = dialogue(appliance.ip, sender=f"x@{with_dmarc}",
                          data=body(subject, sender=f"x@{with_dmarc}"))
    assert refused.code("mail") == 550, refused.replies
    assert passed.code("data") == 250, passed.replies
    msg = delivered(appliance, subject)
    assert b"Received-SPF: fail" in msg


def test_spf_pass_is_recorded_in_the_delivered_message(appliance: Appliance,
                                                       zones: TestDNS) -> None:
    domain = remote_domain(zones, f"spfok{uid()}.test")
    zones.set(domain, "TXT", f"v=spf1 ip4:{CLIENT_IP} -all")
    subject = f"spf-pass-{uid()}"
    d = dialogue(appliance.ip, sender=f"x@{domain}", data=body(subject, sender=f"x@{domain}"))
    assert d.code("data") == 250
    assert b"Received-SPF: pass" in delivered(appliance, subject)


def test_dmarc_reject_policy_refuses_unaligned_mail_when_enabled(appliance: Appliance,
                                                                 zones: TestDNS) -> None:
    domain = remote_domain(zones, f"dmarc{uid()}.test")
    zones.set(domain, "TXT", "v=spf1 ip4:192.0.2.1 -all")
    zones.set(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@remote.test")
    with configured(appliance, smtpd__dmarc__reject="true"):
        d = dialogue(appliance.ip, sender=f"x@{domain}",
                     data=body(f"dmarc-{uid()}", sender=f"x@{domain}"))
    assert d.code("data") == 550, d.replies
    assert "DMARC" in d.text("data")


def test_dkim_signed_mail_from_outside_verifies(appliance: Appliance, zones: TestDNS) -> None:
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    domain = remote_domain(zones, f"signed{uid()}.test")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    zones.set(f"sel._domainkey.{domain}", "TXT",
              "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode())
    subject = f"dkim-in-{uid()}"
    msg = body(subject, sender=f"x@{domain}")
    sig = dkim.sign(msg, b"sel", domain.encode(), pem, include_headers=[b"from", b"subject"])
    d = dialogue(appliance.ip, sender=f"x@{domain}", data=sig + msg)
    assert d.code("data") == 250
    got = delivered(appliance, subject)
    assert f"dkim=pass header.d={domain}".encode() in got, got[:1500]


def test_outgoing_mail_is_dkim_signed_and_an_independent_verifier_agrees(
    appliance: Appliance, zones: TestDNS
) -> None:
    import os
    import shutil
    import smtplib
    import subprocess

    from tests.e2e.conftest import DNS_IP
    from tests.e2e.mail import message, tls_context

    verifier = shutil.which("dkimproxy-verify")
    assert verifier, "dkimproxy-verify (Debian libmail-dkim-perl) is needed: make e2e installs it"
    records = appliance.exec("appliance", "print-dns", DOMAIN).stdout
    txt = next(line for line in records.splitlines() if "._domainkey" in line)
    selector = txt.split("._domainkey", 1)[0].strip()
    value = "".join(part for part in txt.split('"')[1::2])
    zones.set(f"{selector}._domainkey.{DOMAIN}", "TXT", value)
    recipient = f"dkim-out-{uid()}@remote.test"
    with configured(appliance, smtpd__dkim_sign__enabled="true"):
        with smtplib.SMTP(appliance.ip, 587, timeout=15) as s:
            s.starttls(context=tls_context())
            s.login("alice", ALICE_PASSWORD)
            s.send_message(message(ALICE, recipient))
        got = wait_for(lambda: sink_messages(recipient), 30, "the signed message at the sink")[0]
    assert b"DKIM-Signature:" in got
    # Mail::DKIM (Perl), resolving through the test DNS: not our code, not dkimpy.
    raw = got.split(b"\r\n", 3)[3]  # drop the sink's three X-Sink-* lines
    out = subprocess.run([verifier], input=raw, capture_output=True, timeout=30,
                         env={**os.environ, "RES_NAMESERVERS": DNS_IP})
    assert b"pass" in out.stdout.lower(), (out.stdout, out.stderr)


# -- karma and greylisting ------------------------------------------------------------------


def test_karma_puts_a_naughty_host_in_the_penalty_box(appliance: Appliance,
                                                       zones: TestDNS) -> None:
    no_spf = remote_domain(zones, f"nospf{uid()}.test")  # an SPF pass would earn +1
    with configured(appliance, smtpd__karma__enabled="true", smtpd__karma__strikes="1",
                    smtpd__karma__negative="1"):
        bad = dialogue(appliance.ip, helo="localhost", sender=f"x@{no_spf}")  # naughty: -1
        assert bad.code("mail") == 550
        # The bad connection is recorded after it closes, so a session that comes at once
        # may still be let in. Those sessions must stay neutral, or one good connection
        # (an SPF pass for remote.test is +1, a strike here) would cancel the bad one.
        later = wait_for(lambda: (d := dialogue(appliance.ip, sender=f"y@{no_spf}"))
                         .code("mail") >= 500 and d, 15, "the penalty box")
        assert "penalty" in later.text("mail").lower()
        appliance.exec("sh", "-c", "rm -f /var/lib/appliance/smtpd/karma.sqlite*")


def test_greylisting_defers_the_first_try_and_accepts_the_retry(appliance: Appliance) -> None:
    sender = f"grey{uid()}@remote.test"
    with configured(appliance, smtpd__greylisting__enabled="true",
                    smtpd__greylisting__black_timeout="0"):
        first = dialogue(appliance.ip, sender=sender)
        subject = f"grey-{uid()}"
        retry = dialogue(appliance.ip, sender=sender, data=body(subject, sender=sender))
    assert first.code("rcpt") == 451, first.replies
    assert retry.code("data") == 250, retry.replies
    delivered(appliance, subject)


# -- sender and recipient lists -----------------------------------------------------------


def test_badmailfrom_pattern_refuses_the_sender_at_rcpt(appliance: Appliance,
                                                         zones: TestDNS) -> None:
    domain = remote_domain(zones, f"badfrom{uid()}.test")
    with configured(appliance, smtpd__badmailfrom__patterns=[f"*@{domain}", f"!boss@{domain}"]):
        refused = dialogue(appliance.ip, sender=f"spam@{domain}")
        exempt = dialogue(appliance.ip, sender=f"boss@{domain}")
    assert refused.code("mail") == 250 and refused.code("rcpt") == 550, refused.replies
    assert exempt.code("rcpt") == 250


def test_badmailfromto_looks_like_an_unknown_user(appliance: Appliance) -> None:
    with configured(appliance, smtpd__badmailfromto__pairs=f"stalker@remote.test {ALICE}"):
        d = dialogue(appliance.ip, sender="stalker@remote.test")
    assert d.code("rcpt") == 550
    assert "5.1.1" in d.text("rcpt")


def test_badrcptto_pattern_is_refused(appliance: Appliance) -> None:
    with configured(appliance, smtpd__badrcptto__patterns="alice@*"):
        d = dialogue(appliance.ip)
    assert d.code("rcpt") == 550


def test_bogus_bounce_with_two_recipients_is_refused(appliance: Appliance) -> None:
    d = dialogue(appliance.ip, sender="", recipients=(ALICE, f"alice-x@{DOMAIN}"),
                 data=body(f"bounce-{uid()}", sender="mailer-daemon@remote.test"))
    assert d.code("data") == 550, d.replies


def test_headers_without_date_are_refused(appliance: Appliance) -> None:
    msg = b"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: nodate\r\n\r\nHi\r\n"
    d = dialogue(appliance.ip, data=msg)
    assert d.code("data") == 550
    assert "Date" in d.text("data")


# -- headers, copies, disclaimers, TNEF ---------------------------------------------------


def test_disclaimer_is_added_to_outgoing_mail_only(appliance: Appliance) -> None:
    import smtplib

    from tests.e2e.mail import message, tls_context

    text = f"Disclaimer {uid()}: this mail is confidential."
    recipient = f"disc-{uid()}@remote.test"
    with configured(appliance, smtpd__disclaimer__enabled="true", smtpd__disclaimer__text=text):
        with smtplib.SMTP(appliance.ip, 587, timeout=15) as s:
            s.starttls(context=tls_context())
            s.login("alice", ALICE_PASSWORD)
            s.send_message(message(ALICE, recipient))
        got = wait_for(lambda: sink_messages(recipient), 30, "the message at the sink")[0]
        subject = f"disc-in-{uid()}"
        dialogue(appliance.ip, data=body(subject))
        inbound = delivered(appliance, subject)
    assert text.encode() in got
    assert text.encode() not in inbound


def test_tnef_attachment_arrives_as_mime_parts(appliance: Appliance) -> None:
    import email
    import email.policy
    from email.message import EmailMessage
    from pathlib import Path

    samples = sorted(Path(__file__).parents[1].glob("unit/plugins/data/*.tnef"))
    assert samples, "tests/unit/plugins/data has no TNEF sample"
    subject = f"tnef-{uid()}"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "x@remote.test", ALICE, subject
    msg["Date"] = date_now()
    msg.set_content("see attachment")
    msg.add_attachment(samples[0].read_bytes(), maintype="application", subtype="ms-tnef",
                       filename="winmail.dat")
    d = dialogue(appliance.ip, data=msg.as_bytes(policy=email.policy.SMTP))
    assert d.code("data") == 250
    got = email.message_from_bytes(delivered(appliance, subject), policy=email.policy.default)
    types = [p.get_content_type() for p in got.walk()]
    assert "application/ms-tnef" not in types, types
    assert any(p.get_filename() and p.get_filename() != "winmail.dat" for p in got.walk())


# -- recipients: groups, pseudonyms, extensions, internal users, delegation -------------


@pytest.fixture(scope="module")
def bob(appliance: Appliance) -> str:
    appliance.exec("appliance", "user", "add", "bob", "--password-stdin",
                   input="Bob-e2e-passw0rd\n")
    return "Bob-e2e-passw0rd"


def test_group_pseudonym_and_extension_addresses_are_delivered(appliance: Appliance,
                                                               bob: str) -> None:
    appliance.exec("appliance", "config", "set", "groups.team.members", "alice,bob")
    appliance.exec("appliance", "config", "set", "pseudonyms.sales.account", "alice")
    subjects = {}
    for rcpt in (f"sales@{DOMAIN}", f"alice-lists@{DOMAIN}"):
        subjects[rcpt] = f"addr-{uid()}"
        d = wait_for(lambda r=rcpt: (x := dialogue(appliance.ip, recipients=(r,), data=body(
            subjects[r], to=r))).code("rcpt") == 250 and x, 30, f"{rcpt} accepted")
        assert d.code("data") == 250
    # a group is internal by default (SME): the internet is refused, alice may write to it
    team = f"team@{DOMAIN}"
    wait_for(lambda: (x := dialogue(appliance.ip, recipients=(team,))).code("rcpt") == 550
             and replies.INTERNAL_ONLY.format(address=team)[4:] == x.text("rcpt"), 30,
             f"{team} known, and refused to the internet as internal")
    subjects[team] = f"addr-{uid()}"
    assert submit(appliance, ALICE, team, subjects[team]) == {}
    for subject in subjects.values():
        delivered(appliance, subject)
    delivered(appliance, subjects[f"team@{DOMAIN}"], user="bob", password=bob)
    assert dialogue(appliance.ip, recipients=(f"nobody-here@{DOMAIN}",)).code("rcpt") == 550


def test_internal_user_is_unreachable_from_outside_but_not_for_alice(appliance: Appliance,
                                                                     bob: str) -> None:
    import smtplib

    from tests.e2e.mail import message, tls_context

    with configured(appliance, users__bob__visible="internal"):
        outside = dialogue(appliance.ip, recipients=(f"bob@{DOMAIN}",))
        with smtplib.SMTP(appliance.ip, 587, timeout=15) as s:
            s.starttls(context=tls_context())
            s.login("alice", ALICE_PASSWORD)
            refused = s.send_message(message(ALICE, f"bob@{DOMAIN}"))
    assert outside.code("rcpt") == 550 and "5.1.1" in outside.text("rcpt")
    assert refused == {}


def test_delegated_domain_recipients_are_checked_with_its_server(appliance: Appliance) -> None:
    from tests.e2e.conftest import SINK_IP

    domain = "branch.test"
    with configured(appliance, **{f"domains__{domain}__mail_server": SINK_IP}):
        unknown = dialogue(appliance.ip, recipients=(f"unknown-x@{domain}",))
        subject = f"deleg-{uid()}"
        known = dialogue(appliance.ip, recipients=(f"carol@{domain}",),
                         data=body(subject, to=f"carol@{domain}"))
        got = wait_for(lambda: sink_messages(f"carol@{domain}"), 30, "delegated delivery")
    assert unknown.code("rcpt") == 550, unknown.replies
    assert known.code("data") == 250
    assert subject.encode() in got[-1]


def test_bcc_copies_incoming_mail_to_the_archive_user(appliance: Appliance, bob: str) -> None:
    # the archive user first: enabling bcc towards a user that does not exist is refused
    with configured(appliance, smtpd__bcc__user="bob", smtpd__bcc__enabled="true"):
        subject = f"bcc-{uid()}"
        d = dialogue(appliance.ip, data=body(subject))
    assert d.code("data") == 250
    delivered(appliance, subject)
    copy = delivered(appliance, subject, user="bob", password=bob)
    assert b"X-Copied-To: bob@" in copy
