"""Real clients for the e2e tests: SMTP, IMAP and POP3 against the container."""

from __future__ import annotations

import base64
import email.utils
import http.cookiejar
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import EmailMessage

TIMEOUT_S = 15


def date_now() -> str:
    """An RFC 5322 Date of now. A fixed date drifts into SpamAssassin's DATE_IN_PAST_*
    rules as the clock moves on, and tips clean test mail over a low spam level."""
    return email.utils.formatdate(usegmt=True)


def tls_context() -> ssl.SSLContext:
    """The appliance starts with a self-signed certificate: accept it, but use TLS."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def message(sender: str, recipient: str, subject: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject or f"e2e {uuid.uuid4().hex}"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="e2e.test")
    msg.set_content("Hello from the end-to-end tests.\n")
    return msg


def imap_subjects(ip: str, user: str, password: str, *, port: int = 143) -> list[str]:
    """Subjects in the INBOX, over STARTTLS (143) or implicit TLS (993)."""
    if port == 993:
        imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(ip, port, ssl_context=tls_context(),
                                                timeout=TIMEOUT_S)
    else:
        imap = imaplib.IMAP4(ip, port, timeout=TIMEOUT_S)
        imap.starttls(ssl_context=tls_context())
    try:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        subjects = []
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            raw = parts[0][1].decode()  # type: ignore[index]
            subjects.append(raw.split(":", 1)[1].strip())
        return subjects
    finally:
        imap.logout()


def pop3_subjects(ip: str, user: str, password: str, *, port: int = 110) -> list[str]:
    if port == 995:
        pop: poplib.POP3 = poplib.POP3_SSL(ip, port, context=tls_context(), timeout=TIMEOUT_S)
    else:
        pop = poplib.POP3(ip, port, timeout=TIMEOUT_S)
        pop.stls(context=tls_context())
    try:
        pop.user(user)
        pop.pass_(password)
        subjects = []
        count, _ = pop.stat()
        for i in range(1, count + 1):
            _, lines, _ = pop.top(i, 0)
            for line in lines:
                if line.lower().startswith(b"subject:"):
                    subjects.append(line.split(b":", 1)[1].strip().decode())
        return subjects
    finally:
        pop.quit()


def send_port25(ip: str, msg: EmailMessage) -> dict:
    with smtplib.SMTP(ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.remote.test")
        return s.send_message(msg)


def imap_message(ip: str, user: str, password: str, subject: str,
                 mailbox: str = "INBOX") -> bytes | None:
    """The whole message with this subject in a mailbox, or None."""
    return _imap_newest(ip, user, password, ("SUBJECT", f'"{subject}"'), mailbox)


def imap_find(ip: str, user: str, password: str, text: str,
              mailbox: str = "INBOX") -> bytes | None:
    """The newest message whose headers or body contain `text`, or None."""
    return _imap_newest(ip, user, password, ("TEXT", f'"{text}"'), mailbox)


def _imap_newest(ip: str, user: str, password: str, criteria: tuple[str, ...],
                 mailbox: str) -> bytes | None:
    imap = imaplib.IMAP4(ip, 143, timeout=TIMEOUT_S)
    imap.starttls(ssl_context=tls_context())
    try:
        imap.login(user, password)
        imap.select(mailbox, readonly=True)
        _, data = imap.search(None, *criteria)
        nums = data[0].split()
        if not nums:
            return None
        _, parts = imap.fetch(nums[-1], "(BODY.PEEK[])")
        return parts[0][1]  # type: ignore[index,return-value]
    finally:
        imap.logout()


def imap_login(ip: str, user: str, password: str, *, port: int = 993) -> bool:
    """Whether USER logs in over IMAPS with PASSWORD."""
    box = imaplib.IMAP4_SSL(ip, port, ssl_context=tls_context(), timeout=TIMEOUT_S)
    try:
        box.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        box.shutdown()


def imap_answer(ip: str, user: str, password: str, timeout: float = 60) -> str:
    """'OK', or the tagged NO line's text as Dovecot sent it (a ban says why). The
    timeout allows for the delays failed logins earn."""
    box = imaplib.IMAP4_SSL(ip, 993, ssl_context=tls_context(), timeout=timeout)
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def webmail_login(ip: str, user: str, password: str, *,
                  timeout: float = TIMEOUT_S) -> tuple[int, str]:
    """One Roundcube login through its form: (HTTP status, page). 302: logged in, 401:
    refused."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=tls_context()),
                                         _NoRedirect())
    base = f"https://{ip}/webmail/"
    page = opener.open(base, timeout=timeout).read().decode()
    token = re.search(r'name="_token" value="([^"]+)"', page)
    assert token, "no request token on the login page"
    form = urllib.parse.urlencode({"_token": token[1], "_task": "login", "_action": "login",
                                   "_timezone": "UTC", "_url": "", "_user": user,
                                   "_pass": password}).encode()
    try:
        with opener.open(base + "?_task=login", data=form, timeout=timeout) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


SIEVE_PORT = 4190


class ManageSieve:
    """A ManageSieve client (RFC 5804) on a raw socket: the lines as the server sends them."""

    def __init__(self, ip: str) -> None:
        self.sock: socket.socket = socket.create_connection((ip, SIEVE_PORT), TIMEOUT_S)
        self.file = self.sock.makefile("rb")
        self.capabilities = self.response()[1]

    def response(self) -> tuple[str, list[str]]:
        """Lines up to the closing OK / NO / BYE: (that line, the lines before it)."""
        lines = []
        while True:
            line = self.file.readline().decode().rstrip("\r\n")
            assert line, f"connection closed after {lines}"
            if line.split(" ", 1)[0] in ("OK", "NO", "BYE"):
                return line, lines
            lines.append(line)

    def command(self, line: str) -> tuple[str, list[str]]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.response()

    def capability(self, name: str) -> str | None:
        for line in self.capabilities:
            key, _, value = line.partition(" ")
            if key.strip('"') == name:
                return value.strip('"')
        return None

    def starttls(self, context: ssl.SSLContext, hostname: str) -> None:
        assert self.command("STARTTLS")[0].startswith("OK")
        self.sock = context.wrap_socket(self.sock, server_hostname=hostname)
        self.file = self.sock.makefile("rb")
        self.capabilities = self.response()[1]  # sent again over TLS (RFC 5804 §2.2)

    def authenticate(self, user: str, password: str) -> str:
        plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{plain}"')[0]

    def close(self) -> None:
        self.sock.close()
