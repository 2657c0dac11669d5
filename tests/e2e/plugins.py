"""Helpers for the plugin e2e tests: change settings live, run one SMTP dialogue."""

from __future__ import annotations

import smtplib
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    CLIENT_IP,
    DOMAIN,
    Appliance,
    sink_messages,
    wait_for,
)
from tests.e2e.mail import TIMEOUT_S, date_now, imap_message, message, tls_context


def uid() -> str:
    return uuid.uuid4().hex[:10]


def delivered(appliance: Appliance, subject: str, user: str = "alice",
              password: str = ALICE_PASSWORD, timeout: float = 30) -> bytes:
    return wait_for(lambda: imap_message(appliance.ip, user, password, subject), timeout,
                    f"{subject!r} in {user}'s INBOX")


def add_user(appliance: Appliance, name: str, password: str) -> str:
    """`appliance user add`, then wait until port 25 accepts mail for the new user (the
    daemons learn of it on SIGHUP, a moment later). Returns the address."""
    appliance.exec("appliance", "user", "add", name, "--password-stdin", input=password + "\n")
    address = f"{name}@{DOMAIN}"
    wait_for(lambda: dialogue(appliance.ip, recipients=(address,)).code("rcpt") == 250, 30,
             f"port 25 to know {name}")
    return address


def queue_drained(appliance: Appliance, timeout: float = 120) -> None:
    """Wait until Postfix holds nothing: a late (duplicate) delivery is in by then."""
    wait_for(lambda: appliance.queue() == [], timeout, "Postfix's queue to drain", every=1)


def submit(appliance: Appliance, sender: str, recipient: str, subject: str) -> dict:
    """alice sends on 587 (STARTTLS + AUTH)."""
    msg = message(sender, recipient, subject)
    with smtplib.SMTP(appliance.ip, 587, timeout=15) as s:
        s.starttls(context=tls_context())
        s.login("alice", ALICE_PASSWORD)
        return s.send_message(msg)


def at_sink(recipient: str, subject: str, timeout: float = 60) -> bytes:
    return wait_for(lambda: next((m for m in sink_messages(recipient)
                                  if subject.encode() in m), None),
                    timeout, f"{subject} at the remote server for {recipient}")


def _reloads(appliance: Appliance) -> int:
    logs = subprocess.run(["docker", "logs", appliance.container], capture_output=True,
                          text=True, check=False)
    return (logs.stdout + logs.stderr).count("smtp: settings reloaded")


def changed(appliance: Appliance, *commands: str, ready: bool = True) -> None:
    """Run shell commands that change settings (`config setprop ...`, `appliance config
    set ...`). If the SMTP daemons' settings changed, wait until port 25 reloaded them;
    with `ready`, also until `appliance status` is clean (spamd and clamd answer)."""
    def settings_file() -> str:
        return appliance.exec("cat", "/etc/appliance/smtpd.json").stdout

    before, reloads = settings_file(), _reloads(appliance)
    for command in commands:
        appliance.exec("sh", "-c", command)
    if settings_file() != before:
        wait_for(lambda: _reloads(appliance) > reloads, 60, "the smtp daemon to reload")
    if ready:
        wait_for(lambda: appliance.exec("appliance", "status", check=False).returncode == 0,
                 120, "`appliance status` without problems")


@contextmanager
def configured(appliance: Appliance, **settings: str | list[str]) -> Iterator[None]:
    """Set smtpd settings (keys with __ for dots) for the block, then unset them.

    Each is applied on its own, in order, so order them so every step is valid (e.g.
    the bcc archive user before enabling bcc).

    `appliance config set` applies at once; we wait until the port-25 daemon has
    logged its reload, so the next connection sees the new settings.
    """
    keys = [k.replace("__", ".") for k in settings]

    def apply(args: list[list[str]]) -> None:
        before = _reloads(appliance)
        for a in args:
            appliance.exec("appliance", "config", *a)
        wait_for(lambda: _reloads(appliance) > before, 30, "the smtp daemon to reload")

    apply([["set", k, *([v] if isinstance(v, str) else v)]
           for k, v in zip(keys, settings.values(), strict=True)])
    try:
        yield
    finally:
        apply([["unset", k] for k in reversed(keys)])  # undo in reverse: each step valid


@contextmanager
def settings(appliance: Appliance, *pairs: tuple[str, str]) -> Iterator[None]:
    """`appliance config set KEY VALUE` for each pair (applied at once), unset after."""
    for key, value in pairs:
        appliance.exec("appliance", "config", "set", key, value)
    try:
        yield
    finally:
        for key, _ in reversed(pairs):
            appliance.exec("appliance", "config", "unset", key)


@dataclass
class Dialogue:
    """What the server answered at each step of one SMTP session."""

    replies: dict[str, tuple[int, str]] = field(default_factory=dict)

    def code(self, step: str) -> int:
        return self.replies[step][0]

    def text(self, step: str) -> str:
        return self.replies[step][1]

    @property
    def last(self) -> tuple[str, int, str]:
        step = list(self.replies)[-1]
        return step, *self.replies[step]


def dialogue(ip: str, *, helo: str = "mx.remote.test", sender: str = "someone@remote.test",
             recipients: tuple[str, ...] = ("alice@example.com",), data: bytes | None = None,
             port: int = 25) -> Dialogue:
    """EHLO, MAIL, RCPT..., DATA: stops at the first refusal (or a closed connection)."""
    d = Dialogue()
    s = smtplib.SMTP(ip, port, timeout=TIMEOUT_S)
    try:
        code, msg = s.ehlo(helo)
        d.replies["ehlo"] = (code, msg.decode(errors="replace"))
        code, msg = s.mail(sender)
        d.replies["mail"] = (code, msg.decode(errors="replace"))
        if code >= 400:
            return d
        accepted = 0
        for i, r in enumerate(recipients):
            code, msg = s.rcpt(r)
            d.replies[f"rcpt{i}" if i else "rcpt"] = (code, msg.decode(errors="replace"))
            accepted += code < 400
        if not accepted or data is None:
            return d
        code, msg = s.data(data)
        d.replies["data"] = (code, msg.decode(errors="replace"))
        return d
    except smtplib.SMTPServerDisconnected as e:
        d.replies["disconnected"] = (0, str(e))
        return d
    finally:
        try:
            s.close()
        except OSError:
            pass


def body(subject: str, *, sender: str = "someone@remote.test", to: str = "alice@example.com",
         extra_headers: str = "", text: str = "Hello.\n") -> bytes:
    msg = (f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
           f"Date: {date_now()}\nMessage-ID: <{subject}@remote.test>\n"
           f"{extra_headers}\n{text}")
    return msg.replace("\n", "\r\n").encode()


@contextmanager
def bannable(appliance: Appliance, max_failures: int | None = None) -> Iterator[None]:
    """The host's address may be banned (the suite exempts it: conftest), after
    MAX_FAILURES failures if given, without the growing delays. Afterwards any ban on it
    is lifted and the suite's settings are back (every test shares the container and
    the host's address). A ban left by an earlier test is lifted first: `ban remove`
    also forgets the failures."""
    settings = ["appliance config set security.failure_delay 0",
                "appliance config unset security.never_ban"]
    if max_failures is not None:
        settings.append(f"appliance config set security.max_failures {max_failures}")
    changed(appliance, *settings, ready=False)
    appliance.exec("appliance", "ban", "remove", CLIENT_IP, check=False)
    try:
        yield
    finally:
        appliance.exec("appliance", "ban", "remove", CLIENT_IP, check=False)
        changed(appliance, f"appliance config set security.never_ban {CLIENT_IP}/32",
                "appliance config unset security.max_failures",
                "appliance config unset security.failure_delay", ready=False)
