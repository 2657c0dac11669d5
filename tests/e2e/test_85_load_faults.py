"""Faults under load, against the container: once the appliance said 250, the message
arrives exactly once, whatever breaks next. Counted by Message-ID in the mailbox.

A load generator (4 sessions from the host, i.e. from the internet) sends numbered
messages; a message that got no 250 (refusal, 4xx, hang-up) is retried by its client,
as real senders do, until it gets one. Midway the test breaks something: kills the
port-25 daemon with SIGKILL, stops Postfix, or SIGKILLs the whole container. After the
appliance is back, every message must be in the mailbox exactly once.

Two kinds of copies reach the mailbox twice without the appliance's duplicate
suppression (delivery.duplicate_window_hours, a Sieve `duplicate` test on the
Message-ID): a message whose first attempt ended without an answer after its final dot,
that the queue had taken just before the fault (RFC 1047's window, which no SMTP server
can close), and a message Dovecot had saved just before Postfix died, which Postfix
delivers again because it had not recorded the delivery (Postfix delivers at least
once). Only a SIGKILL of the whole container can still leave a second copy: it can
land between Dovecot's save and its record of the Message-ID, so that case checks that
nothing is lost and counts duplicates in faults.txt, never hides them.

The counts of each run are written to $E2E_STATE/faults.txt for the closing notes.
"""

from __future__ import annotations

import copy
import imaplib
import smtplib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest

from appliance.services.postfix import LMTP_SOCKET
from appliance.smtpd import replies
from tests.e2e.conftest import DOMAIN, STATE, UP_TIMEOUT_S, Appliance, wait_for
from tests.e2e.mail import TIMEOUT_S, date_now, send_port25, tls_context
from tests.e2e.plugins import add_user, delivered, queue_drained, settings, uid

USER, PASSWORD = "loadtest", "Load-test-passw0rd"
SESSIONS = 4  # under SME's InstancesPerIP (5) for the host's one address
MESSAGES = 240


@pytest.fixture(scope="module")
def mailbox(appliance: Appliance) -> str:
    return add_user(appliance, USER, PASSWORD)


@dataclass
class Load:
    """What the clients saw: which ids got a 250, how many attempts were refused."""

    ip: str
    recipient: str
    run: str = field(default_factory=uid)
    acked: set[str] = field(default_factory=set)
    retried: set[str] = field(default_factory=set)  # ids that needed more than one attempt
    attempts: int = 0
    temporary: int = 0  # 4xx replies
    lost_sessions: int = 0  # hang-ups, refused connections
    lock: threading.Lock = field(default_factory=threading.Lock)
    built: dict[int, EmailMessage] = field(default_factory=dict)

    def message_id(self, n: int) -> str:
        return f"<load-{self.run}-{n}@remote.test>"

    def message(self, n: int) -> EmailMessage:
        """Message n, the same bytes at every attempt, as a real sender retries."""
        with self.lock:
            if n not in self.built:
                self.built[n] = self._build(n)
            return self.built[n]

    def _build(self, n: int) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = "load@remote.test"
        msg["To"] = self.recipient
        msg["Subject"] = f"load {self.run} {n}"
        msg["Date"] = date_now()
        msg["Message-ID"] = self.message_id(n)
        msg.set_content(f"Message {n} of run {self.run}.\n" + "x" * 1500 + "\n")
        return msg

    def client(self, numbers: list[int], give_up: float) -> None:
        smtp: smtplib.SMTP | None = None
        pending = list(numbers)
        tried: set[int] = set()
        while pending and time.monotonic() < give_up:
            n = pending[0]
            if n in tried:
                with self.lock:
                    self.retried.add(self.message_id(n))
            tried.add(n)
            try:
                if smtp is None:
                    smtp = smtplib.SMTP(self.ip, 25, timeout=TIMEOUT_S, local_hostname="load.test")
                with self.lock:
                    self.attempts += 1
                refused = smtp.send_message(self.message(n))
                assert not refused
                with self.lock:
                    self.acked.add(self.message_id(n))
                pending.pop(0)
            except smtplib.SMTPResponseException as e:
                with self.lock:
                    self.temporary += 400 <= e.smtp_code < 500
                smtp = _drop(smtp)
                time.sleep(0.2)
            except (smtplib.SMTPException, OSError):
                with self.lock:
                    self.lost_sessions += 1
                smtp = _drop(smtp)
                time.sleep(0.2)
        _drop(smtp)

    def start(self, give_up_s: float = 300) -> list[threading.Thread]:
        give_up = time.monotonic() + give_up_s
        threads = [threading.Thread(target=self.client,
                                    args=(list(range(i, MESSAGES, SESSIONS)), give_up))
                   for i in range(SESSIONS)]
        for t in threads:
            t.start()
        return threads

    def record(self, case: str, delivered: Counter[str]) -> None:
        ids = {self.message_id(n) for n in range(MESSAGES)}
        line = (f"{case}: sent {MESSAGES} messages in {self.attempts} attempts "
                f"({len(self.retried)} retried), {len(self.acked)} acknowledged, "
                f"{self.temporary} 4xx, "
                f"{self.lost_sessions} lost sessions; delivered "
                f"{sum(1 for i in ids if delivered[i] == 1)} once, "
                f"{sum(1 for i in ids if delivered[i] > 1)} more than once, "
                f"{sum(1 for i in ids if delivered[i] == 0)} never\n")
        with (STATE / "faults.txt").open("a") as f:
            f.write(line)


def _drop(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        try:
            smtp.close()
        except OSError:
            pass
    return None


def delivered_ids(ip: str, run: str) -> Counter[str]:
    """Message-IDs of this run in the mailbox, with how often each is there."""
    imap = imaplib.IMAP4(ip, 143, timeout=TIMEOUT_S)
    try:
        imap.starttls(ssl_context=tls_context())
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "HEADER", "Message-ID", f"load-{run}-")
        numbers = data[0].split()
        found: Counter[str] = Counter()
        for chunk in range(0, len(numbers), 200):
            ids = b",".join(numbers[chunk:chunk + 200])
            _, parts = imap.fetch(ids, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for part in parts:
                if isinstance(part, tuple):
                    found[part[1].decode().split(":", 1)[1].strip()] += 1
        return found
    finally:
        imap.logout()


def run_with_fault(appliance: Appliance, recipient: str, case: str,
                   fault: Callable[[], None], *, exactly_once: bool = True) -> Load:
    """Start the load, break things at a third of it, then check the mailbox."""
    load = Load(appliance.ip, recipient)
    threads = load.start()
    wait_for(lambda: len(load.acked) >= MESSAGES // 3, 120, "a third of the load to be sent")
    fault()
    for t in threads:
        t.join(UP_TIMEOUT_S + 120)
    assert len(load.acked) == MESSAGES, f"clients gave up: {len(load.acked)} acknowledged"
    everything = {load.message_id(n) for n in range(MESSAGES)}

    def all_there() -> Counter[str] | None:
        counts = delivered_ids(appliance.ip, load.run)
        return counts if set(counts) >= everything else None

    wait_for(all_there, 180, "every message in the mailbox", every=2)
    queue_drained(appliance)  # a redelivery after the fault is counted too
    counts = delivered_ids(appliance.ip, load.run)
    load.record(case, counts)
    if exactly_once:
        assert {i: counts[i] for i in everything if counts[i] != 1} == {}, "duplicates"
    return load


@pytest.fixture
def restore_services(appliance: Appliance) -> Iterator[None]:
    yield
    appliance.exec("supervisorctl", "start", "postfix", check=False)
    wait_for(lambda: "127.0.0.1:10025" in appliance.exec("ss", "-ltn").stdout, 60,
             "Postfix to listen again")


def test_sigkill_of_the_smtp_daemon_under_load_loses_and_duplicates_nothing(
        appliance: Appliance, mailbox: str) -> None:
    def kill() -> None:
        pid = appliance.exec("supervisorctl", "pid", "smtpd-smtp").stdout.strip()
        appliance.exec("kill", "-9", pid)

    load = run_with_fault(appliance, mailbox, "smtpd-smtp SIGKILL", kill)
    assert load.lost_sessions > 0  # the kill really hit sessions in flight


def test_postfix_stopped_under_load_gives_4xx_never_250_and_loses_nothing(
        appliance: Appliance, mailbox: str, restore_services: None) -> None:
    def stop_postfix_for_a_while() -> None:
        appliance.exec("supervisorctl", "stop", "postfix")
        time.sleep(5)
        appliance.exec("supervisorctl", "start", "postfix")

    load = run_with_fault(appliance, mailbox, "Postfix stopped 5 s", stop_postfix_for_a_while)
    assert load.temporary > 0  # senders were told to retry, not lied to


def test_sigkill_of_the_whole_container_under_load_loses_nothing(
        appliance: Appliance, mailbox: str) -> None:
    def kill_container() -> None:
        appliance.compose("kill", "-s", "SIGKILL", "appliance")
        time.sleep(2)  # clients see refused connections meanwhile
        appliance.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
                          "appliance")
        appliance.wait_healthy()

    load = run_with_fault(appliance, mailbox, "container SIGKILL", kill_container,
                          exactly_once=False)
    assert load.lost_sessions > 0


# Postfix after a crash: the same queue file handed to Dovecot's LMTP once more.
LMTP_REDELIVERY = f"""
import smtplib, sys
with smtplib.LMTP({LMTP_SOCKET!r}) as lmtp:
    print(lmtp.sendmail("load@remote.test", [sys.argv[1]], sys.stdin.read()))
"""


def test_a_retried_or_redelivered_message_is_stored_once(appliance: Appliance,
                                                          mailbox: str) -> None:
    load = Load(appliance.ip, mailbox)
    first, other = load.message(0), load.message(1)
    ids = Counter({load.message_id(0): 1})
    # The sender's retry after a 250 it never saw, right behind the first copy.
    assert send_port25(appliance.ip, first) == {}
    assert send_port25(appliance.ip, first) == {}
    queue_drained(appliance)
    wait_for(lambda: delivered_ids(appliance.ip, load.run) == ids, 30, "the first copy")
    redelivered = appliance.exec("/opt/appliance/bin/python", "-c", LMTP_REDELIVERY, mailbox,
                                 input=first.as_string())
    assert redelivered.stdout.strip() == "{}"  # accepted by LMTP, as Postfix would see it
    assert send_port25(appliance.ip, other) == {}
    ids[load.message_id(1)] = 1
    # A sender reusing a Message-ID for different mail loses nothing.
    reused = copy.deepcopy(first)
    reused.replace_header("Subject", "another message, the same Message-ID")
    assert send_port25(appliance.ip, reused) == {}
    ids[load.message_id(0)] = 2
    wait_for(lambda: delivered_ids(appliance.ip, load.run) == ids, 30, "the other messages")
    queue_drained(appliance)
    assert delivered_ids(appliance.ip, load.run) == ids
    # With the window at 0 every copy is kept.
    with settings(appliance, ("delivery.duplicate_window_hours", "0")):
        assert send_port25(appliance.ip, first) == {}
        ids[load.message_id(0)] = 3
        wait_for(lambda: delivered_ids(appliance.ip, load.run) == ids, 30, "a second copy")


# -- limits ----------------------------------------------------------------------------

def _rss_kb(appliance: Appliance, program: str) -> int:
    pid = appliance.exec("supervisorctl", "pid", program).stdout.strip()
    return int(appliance.exec("ps", "-o", "rss=", "-p", pid).stdout.strip())


def test_500_idle_connections_from_one_address_are_capped_and_others_still_served(
        appliance: Appliance) -> None:
    before = _rss_kb(appliance, "smtpd-smtp")
    held: list[socket.socket] = []
    answers: Counter[str] = Counter()
    try:
        for _ in range(500):
            s = socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S)
            held.append(s)
        for s in held:
            line = s.makefile("rb").readline().decode().rstrip("\r\n")
            answers["greeted" if line.startswith("220") else line] += 1
        during = _rss_kb(appliance, "smtpd-smtp")
        # Another client, from another address (the test network's secondary server),
        # is still served while the 500 are held.
        subject = f"while-500-{uid()}"
        sent = appliance.compose("exec", "-T", "sink", "/opt/appliance/bin/python", "-c",
                                 "import smtplib; from email.message import EmailMessage; "
                                 "m = EmailMessage(); m['From'] = 'other@remote.test'; "
                                 f"m['To'] = 'alice@{DOMAIN}'; m['Subject'] = '{subject}'; "
                                 f"m['Date'] = '{date_now()}'; "
                                 "m.set_content('hi'); "
                                 f"smtplib.SMTP('{appliance.ip}', 25, timeout=30)"
                                 ".send_message(m)", check=False)
        assert sent.returncode == 0, sent.stderr
        delivered(appliance, subject)
    finally:
        for s in held:
            s.close()
    assert answers == Counter({"greeted": 5, replies.TOO_MANY_FROM_ADDRESS: 495})
    with (STATE / "faults.txt").open("a") as f:
        f.write(f"500 idle connections: smtpd-smtp RSS {before} kB before, {during} kB "
                f"while held; {dict(answers)}\n")
    assert during < 200_000  # bounded: refused connections hold no session state


def test_the_global_instances_cap_refuses_the_connection_over_it(appliance: Appliance) -> None:
    with settings(appliance, ("smtpd.smtp.instances_per_ip", "50"),
                  ("smtpd.smtp.instances", "8")):
        wait_for(lambda: '"instances": 8' in appliance.exec(
            "cat", "/etc/appliance/smtpd.json").stdout, 30, "the new cap")
        wait_for(lambda: _greets(appliance), 30, "port 25 after the restart")
        held = []
        try:
            for _ in range(8):
                s = socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S)
                held.append(s)
                assert s.makefile("rb").readline().startswith(b"220")
            extra = socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S)
            held.append(extra)
            assert (extra.makefile("rb").readline().decode().rstrip("\r\n")
                    == replies.TOO_MANY_CONNECTIONS)
        finally:
            for s in held:
                s.close()
    wait_for(lambda: _greets(appliance), 30, "port 25 with the default caps")


def _greets(appliance: Appliance) -> bool:
    with socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S) as s:
        return s.makefile("rb").readline().startswith(b"220")


# -- slow clients ----------------------------------------------------------------------

def test_a_byte_at_a_time_client_is_timed_out_and_a_slow_real_upload_survives(
        appliance: Appliance) -> None:
    with settings(appliance, ("smtpd.timeout", "5")):
        wait_for(lambda: '"timeout": 5' in appliance.exec(
            "cat", "/etc/appliance/smtpd.json").stdout, 30, "the new timeout")
        wait_for(lambda: _greets(appliance), 30, "port 25 after the restart")
        # Slowloris: one byte a second of a command that never ends.
        with socket.create_connection((appliance.ip, 25), timeout=30) as s:
            assert s.recv(512).startswith(b"220")
            started = time.monotonic()
            reply = b""
            s.settimeout(1)
            for byte in b"EHLO " + b"s" * 30:
                try:
                    s.sendall(bytes([byte]))
                    reply = s.recv(512)
                    break  # an answer (or b"": hung up) before the line ended
                except TimeoutError:
                    continue
                except OSError:
                    break
            waited = time.monotonic() - started
        assert reply.decode().startswith("421 4.4.2"), reply
        assert 4 < waited < 12
        # A 1 MB message at about 100 kB/s: ten seconds, twice the timeout, never idle.
        subject = f"slow-upload-{uid()}"
        body = ("y" * 998 + "\r\n") * 1000
        with smtplib.SMTP(appliance.ip, 25, timeout=30) as smtp:
            smtp.ehlo("slow.remote.test")
            smtp.mail("slow@remote.test")
            smtp.rcpt(f"alice@{DOMAIN}")
            smtp.putcmd("DATA")
            assert smtp.getreply()[0] == 354
            head = (f"From: slow@remote.test\r\nTo: alice@{DOMAIN}\r\nSubject: {subject}\r\n"
                    f"Date: {date_now()}\r\n\r\n")
            smtp.sock.sendall(head.encode())
            for i in range(0, len(body), 10_000):
                smtp.sock.sendall(body[i:i + 10_000].encode())
                time.sleep(0.1)
            smtp.sock.sendall(b".\r\n")
            code, _ = smtp.getreply()
        assert code == 250
        delivered(appliance, subject)
