"""Administration against the running container: delivery settings, accounts, the queue,
and SME Server's own commands typed verbatim (the README's table)."""

from __future__ import annotations

import smtplib

import pytest

from appliance.config.schema import RESERVED_NAMES
from tests.e2e.conftest import (
    ALICE_PASSWORD,
    DOMAIN,
    SINK_IP,
    Appliance,
    wait_for,
)
from tests.e2e.mail import imap_find, imap_subjects
from tests.e2e.plugins import (
    add_user,
    at_sink,
    body,
    configured,
    delivered,
    dialogue,
    settings,
    submit,
    uid,
)

ALICE = f"alice@{DOMAIN}"
DORA_PASSWORD = "Dora-e2e-passw0rd"
AARON_PASSWORD = "Aaron-e2e-passw0rd"
FRANK_PASSWORD, FRANK_SECOND_PASSWORD = "Frank-e2e-passw0rd", "Frank-second-passw0rd"


@pytest.fixture(scope="module")
def dora(appliance: Appliance) -> str:
    add_user(appliance, "dora", DORA_PASSWORD)
    return DORA_PASSWORD


def sme(appliance: Appliance, command: str, check: bool = True):
    """One SME command line, verbatim, in a shell inside the container."""
    return appliance.exec("sh", "-c", command, check=check)


# -- mail delivery settings --------------------------------------------------------------

def test_outgoing_mail_leaves_through_the_smarthost_with_auth_and_tls(
        appliance: Appliance) -> None:
    subject = f"smarthost-{uid()}"
    with settings(appliance, ("delivery.smarthost", f"{SINK_IP}:587"),
                  ("delivery.smarthost_user", "office"),
                  ("delivery.smarthost_password", "relay-pass"),
                  ("delivery.smarthost_tls", "encrypt")):
        assert submit(appliance, ALICE, "friend@elsewhere.test", subject) == {}
        got = at_sink("friend@elsewhere.test", subject)
    head = got.split(b"\r\n\r\n", 1)[0]
    assert b"X-Sink-Port: 587" in head  # the smarthost, not elsewhere.test's MX on 25
    assert b"X-Sink-Auth: office" in head
    assert b"X-Sink-TLS: yes" in head


def test_delegate_mail_server_receives_every_local_domains_mail(appliance: Appliance) -> None:
    subject = f"delegate-{uid()}"
    sme(appliance, f"config set DelegateMailServer {SINK_IP} && signal-event email-update")
    try:
        d = wait_for(lambda: (x := dialogue(appliance.ip, data=body(subject, to=ALICE)))
                     .replies.get("data", (0,))[0] == 250 and x, 30, "delegated acceptance")
        assert d.code("data") == 250
        got = at_sink(ALICE, subject)
        assert b"X-Sink-Port: 25" in got
    finally:
        sme(appliance, "config delete DelegateMailServer && signal-event email-update")
    assert imap_find(appliance.ip, "alice", ALICE_PASSWORD, subject) is None


def test_group_mail_skips_excluded_members(appliance: Appliance, dora: str) -> None:
    appliance.exec("appliance", "group", "add", "group1", "alice", "dora")
    try:
        sme(appliance, "db accounts setprop group1 EmailExcludeUsers dora && "
                       "signal-event group-modify group1")
        subject = f"group-{uid()}"
        # groups are internal (SME): alice, a member, writes to it on 587
        assert submit(appliance, ALICE, f"group1@{DOMAIN}", subject) == {}
        delivered(appliance, subject)
        marker = f"after-{uid()}"  # dora's mail after the group's: proves hers was not lost
        dialogue(appliance.ip, recipients=(f"dora@{DOMAIN}",), data=body(marker))
        delivered(appliance, marker, user="dora", password=dora)
        assert imap_find(appliance.ip, "dora", dora, subject) is None
    finally:
        appliance.exec("appliance", "group", "del", "group1")


def test_everyone_reaches_all_users_but_those_who_opted_out(appliance: Appliance,
                                                           dora: str) -> None:
    sme(appliance, "db accounts setprop dora EveryoneEmail no && signal-event user-modify")
    try:
        subject = f"everyone-{uid()}"
        to = f"everyone@{DOMAIN}"
        # everyone@ is internal (SME): the internet is refused, our users may write to it
        outside = dialogue(appliance.ip, recipients=(to,), data=body(subject, to=to))
        assert outside.code("rcpt") == 550 and "5.7.1" in outside.text("rcpt")
        assert submit(appliance, ALICE, to, subject) == {}
        delivered(appliance, subject)
        marker = f"after-{uid()}"
        dialogue(appliance.ip, recipients=(f"dora@{DOMAIN}",), data=body(marker))
        delivered(appliance, marker, user="dora", password=dora)
        assert imap_find(appliance.ip, "dora", dora, subject) is None
    finally:
        sme(appliance, "db accounts delprop dora EveryoneEmail && signal-event user-modify")


def test_postmaster_is_accepted_and_reaches_the_admin(appliance: Appliance) -> None:
    subject = f"postmaster-{uid()}"
    to = f"postmaster@{DOMAIN}"
    assert dialogue(appliance.ip, recipients=(to,), data=body(subject, to=to)
                    ).code("data") == 250
    delivered(appliance, subject)  # alice: the first user added, recorded as system.admin


# -- accounts: reserved names, the admin, passwords, a deleted user's mailbox ------------

def test_reserved_names_are_refused_and_nothing_changes(appliance: Appliance) -> None:
    # every account a process of the image runs as is reserved (fetchmail runs from
    # time to time, not now); Debian's other system accounts mean nothing for mail
    running = appliance.exec("ps", "-eo", "user:32=").stdout
    assert set(running.split()) <= RESERVED_NAMES
    before = appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout
    for name in ("postmaster", "root", "www-data", "dovecot"):
        r = appliance.exec("appliance", "user", "add", name, "--password-stdin",
                           input="Reserved-e2e-passw0rd\n", check=False)
        assert r.returncode == 2 and "reserved" in r.stderr, (name, r.stderr)
        assert f"users.{name}" in r.stderr
    r = appliance.exec("appliance", "pseudonym", "add", "abuse", "alice", check=False)
    assert r.returncode == 2 and "reserved" in r.stderr
    r = sme(appliance, "db accounts set mailer-daemon pseudonym Account alice", check=False)
    assert r.returncode == 2 and "reserved" in r.stderr
    assert appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout == before


def test_weak_passwords_are_refused_with_exit_1(appliance: Appliance) -> None:
    for password in ("a", "secret", "Password123!"):
        r = appliance.exec("appliance", "user", "add", "weakling", "--password-stdin",
                           input=password + "\n", check=False)
        assert r.returncode == 1 and "password for weakling refused" in r.stderr, r.stderr
    assert "weakling" not in appliance.exec("appliance", "user", "list").stdout
    r = appliance.exec("appliance", "user", "passwd", "alice", "--password-stdin",
                       input="secret\n", check=False)
    assert r.returncode == 1 and "refused" in r.stderr
    assert imap_subjects(appliance.ip, "alice", ALICE_PASSWORD) is not None  # unchanged


def test_postmaster_stays_with_the_admin_after_adding_aaron(appliance: Appliance) -> None:
    assert appliance.exec("appliance", "config", "get", "system.admin").stdout == '"alice"\n'
    add_user(appliance, "aaron", AARON_PASSWORD)  # sorts before alice
    try:
        assert "admin (postmaster@, abuse@, dmarc-feedback@): alice" in appliance.exec(
            "appliance", "status", check=False).stdout
        subject = f"postmaster-after-aaron-{uid()}"
        to = f"postmaster@{DOMAIN}"
        assert dialogue(appliance.ip, recipients=(to,), data=body(subject, to=to)
                        ).code("data") == 250
        delivered(appliance, subject)  # alice's INBOX
        marker = f"after-{uid()}"
        dialogue(appliance.ip, recipients=(f"aaron@{DOMAIN}",), data=body(marker))
        delivered(appliance, marker, user="aaron", password=AARON_PASSWORD)
        assert imap_find(appliance.ip, "aaron", AARON_PASSWORD, subject) is None
        # the admin cannot be deleted while others exist
        r = appliance.exec("appliance", "user", "del", "alice", check=False)
        assert r.returncode == 2 and "alice is the admin" in r.stderr
    finally:
        appliance.exec("appliance", "user", "del", "aaron", "--purge")


def test_a_deleted_users_mailbox_is_archived_and_a_new_user_of_that_name_starts_empty(
        appliance: Appliance) -> None:
    add_user(appliance, "frank", FRANK_PASSWORD)
    subject = f"for-the-first-frank-{uid()}"
    dialogue(appliance.ip, recipients=(f"frank@{DOMAIN}",), data=body(subject))
    delivered(appliance, subject, user="frank", password=FRANK_PASSWORD)
    out = appliance.exec("appliance", "user", "del", "frank").stdout
    assert "the old mailbox is kept in /var/lib/appliance/archive/frank-" in out
    archived = out.split("kept in ", 1)[1].split()[0]
    found = appliance.exec("grep", "-rl", subject, f"{archived}/Maildir", check=False)
    assert found.returncode == 0  # the first frank's mail, indexes and all, kept aside
    add_user(appliance, "frank", FRANK_SECOND_PASSWORD)
    try:
        wait_for(lambda: imap_subjects(appliance.ip, "frank", FRANK_SECOND_PASSWORD) == [],
                 30, "the new frank to log in to an empty INBOX")
    finally:
        appliance.exec("appliance", "user", "del", "frank", "--purge")


def test_forwarding_with_a_copy_kept(appliance: Appliance, dora: str) -> None:
    sme(appliance, "db accounts setprop dora ForwardAddress dora@remote.test "
                   "EmailForward both && signal-event user-modify dora")
    try:
        subject = f"forward-{uid()}"
        to = f"dora@{DOMAIN}"
        assert dialogue(appliance.ip, recipients=(to,), data=body(subject, to=to)
                        ).code("data") == 250
        at_sink("dora@remote.test", subject)
        delivered(appliance, subject, user="dora", password=dora)
    finally:
        sme(appliance, "db accounts setprop dora EmailForward local && "
                       "signal-event user-modify dora")


def test_unknown_user_can_go_to_an_account(appliance: Appliance) -> None:
    to = f"no-such-person-{uid()}@{DOMAIN}"
    assert dialogue(appliance.ip, recipients=(to,)).code("rcpt") == 550
    sme(appliance, "config set EmailUnknownUser alice && signal-event email-update")
    try:
        subject = f"catchall-{uid()}"
        d = wait_for(lambda: (x := dialogue(appliance.ip, recipients=(to,),
                                            data=body(subject, to=to)))
                     .replies.get("data", (0,))[0] == 250 and x, 30, "the catch-all")
        assert d.code("data") == 250
        delivered(appliance, subject)
    finally:
        sme(appliance, "config set EmailUnknownUser returntosender && "
                       "signal-event email-update")


def test_queue_lifetime_bounces_and_a_double_bounce_reaches_double_bounce_to(
        appliance: Appliance, dora: str) -> None:
    subject = f"doublebounce-{uid()}"
    with settings(appliance, ("queue.lifetime", "0"), ("queue.double_bounce_to", "dora")), \
            configured(appliance, users__alice__send_as="@unreachable.test"):  # as ghost@
        # Neither the recipient nor the sender's domain can be reached: the message
        # bounces at its first failure (lifetime 0), the bounce cannot be returned either.
        assert submit(appliance, "ghost@unreachable.test", "someone@unreachable.test",
                      subject) == {}
        got = wait_for(lambda: imap_find(appliance.ip, "dora", dora, subject), 120,
                       "the double bounce in dora's INBOX")
    assert b"someone@unreachable.test" in got
    # postqueue -j has no subject: find the message by its sender
    wait_for(lambda: not any(m.get("sender") == "ghost@unreachable.test"
                             for m in appliance.queue()), 30,
             "the queue to let go of the message")


def test_queue_commands_list_hold_and_delete(appliance: Appliance) -> None:
    subject = f"queued-{uid()}"
    assert submit(appliance, ALICE, "someone@unreachable.test", subject) == {}
    qid = wait_for(lambda: next((m["queue_id"] for m in appliance.queue()
                                 if any(r["address"] == "someone@unreachable.test"
                                        for r in m["recipients"])), None), 60, "queued")
    listing = appliance.exec("appliance", "queue", "list").stdout
    assert qid in listing and "someone@unreachable.test" in listing
    appliance.exec("appliance", "queue", "hold", qid)
    assert any(m["queue_id"] == qid and m["queue_name"] == "hold" for m in appliance.queue())
    appliance.exec("appliance", "queue", "delete", qid)
    assert all(m["queue_id"] != qid for m in appliance.queue())
    bad = appliance.exec("appliance", "queue", "delete", "NOSUCHID", check=False)
    assert bad.returncode == 2 and "no message NOSUCHID" in bad.stderr


def test_status_reports_every_service_and_the_queue(appliance: Appliance) -> None:
    out = appliance.exec("appliance", "status").stdout
    for program in ("postfix", "dovecot", "smtpd-smtp", "smtpd-smtps", "smtpd-submission"):
        assert f"{program} " in out and "RUNNING" in out.split(f"{program} ", 1)[1][:30]
    assert "queue: " in out and "TLS certificate" in out and "problems: none" in out


# -- SME Server's commands, verbatim ------------------------------------------------------

def test_sme_commands_from_the_readme_work_verbatim(appliance: Appliance, dora: str) -> None:
    def postconf(name: str) -> str:
        return appliance.exec("postconf", "-h", name).stdout.strip()

    # qpsmtpd properties: show them, change one, see the daemon change.
    assert "DNSBL=disabled" in sme(appliance, "config show qpsmtpd").stdout
    sme(appliance, "config setprop qpsmtpd TlsBeforeAuth 0 && signal-event email-update")
    try:
        ehlo = wait_for(lambda: b"AUTH" in (r := smtplib.SMTP(appliance.ip, 25, timeout=15)
                                            .ehlo("probe.test")[1]) and r, 30, "AUTH on 25")
        assert b"PLAIN" in ehlo
    finally:
        sme(appliance, "config setprop qpsmtpd TlsBeforeAuth 1 && signal-event email-update")
    assert sme(appliance, "config getprop qpsmtpd TlsBeforeAuth").stdout == "1\n"

    # qmail and smtpd properties reach Postfix.
    sme(appliance, "config setprop qmail ConcurrencyRemote 10 DoubleBounceTo devnull && "
                   "config setprop smtpd HeloHost relay.example.com && "
                   "signal-event email-update")
    try:
        assert postconf("smtp_helo_name") == "relay.example.com"
        assert "2bounce" not in postconf("notify_classes")
        assert " 10 " in appliance.exec("postconf", "-M", "smtp/unix").stdout
        subject = f"helo-{uid()}"
        assert submit(appliance, ALICE, "friend@remote.test", subject) == {}
        assert b"X-Sink-Helo: relay.example.com" in at_sink("friend@remote.test", subject)
    finally:
        sme(appliance, "config delprop qmail ConcurrencyRemote DoubleBounceTo && "
                       "config delprop smtpd HeloHost && signal-event email-update")
    assert postconf("smtp_helo_name") == "$myhostname"  # back to the default

    # Visible internal for every user, with the wiki's own pipeline, then back.
    sme(appliance, 'db accounts show | awk -F "="  \'/\\=user/ {print $1}\' |while read USER; '
                   "do db accounts setprop $USER Visible internal; done && "
                   "signal-event email-update")
    try:
        wait_for(lambda: dialogue(appliance.ip, recipients=(f"dora@{DOMAIN}",)).code("rcpt")
                 == 550, 30, "dora hidden from the internet")
    finally:
        sme(appliance, 'db accounts show | awk -F "=" \'/\\=user/ {print $1}\' |while read '
                       "USER; do db accounts delprop $USER Visible; done && "
                       "signal-event email-update")
    wait_for(lambda: dialogue(appliance.ip, recipients=(f"dora@{DOMAIN}",)).code("rcpt")
             == 250, 30, "dora visible again")

    # A domain delivered to another server, then back.
    sme(appliance, "db domains set shop.test domain && "
                   f"db domains setprop shop.test MailServer {SINK_IP} && "
                   "signal-event domain-modify")
    try:
        subject = f"shop-{uid()}"
        d = wait_for(lambda: (x := dialogue(appliance.ip, recipients=("orders@shop.test",),
                                            data=body(subject, to="orders@shop.test")))
                     .replies.get("data", (0,))[0] == 250 and x, 30, "shop.test accepted")
        assert d.code("data") == 250
        at_sink("orders@shop.test", subject)
        sme(appliance, "db domains delprop shop.test MailServer && signal-event email-update")
        assert "shop.test=domain\n    DKIMSigning=enabled" in sme(
            appliance, "db domains show shop.test").stdout
    finally:
        sme(appliance, "db domains delete shop.test && signal-event email-update")

    # What does not apply here says why, and changes nothing.
    before = appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout
    php = sme(appliance, "config setprop php UploadMaxFilesize 10M", check=False)
    assert php.returncode == 2 and "webmail.upload_max_mb" in php.stderr
    bad = sme(appliance, "config setprop qpsmtpd HeloPolicy sloppy", check=False)
    assert bad.returncode == 2 and "lenient" in bad.stderr
    assert appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout == before
    assert dialogue(appliance.ip, recipients=(ALICE,)).code("rcpt") == 250
