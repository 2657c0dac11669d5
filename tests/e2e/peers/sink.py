"""The e2e tests' remote mail server: accepts everything and keeps it as files.

Runs in a container of the appliance image (its venv has aiosmtpd) at the MX of the
test's remote domains; each message lands in /state/sink/ as an .eml with the envelope
in X-Sink-* headers, so tests read what the appliance really sent over the wire.

Port 587 plays an ISP's smarthost: STARTTLS, then AUTH (user "office", password
"relay-pass") is required; X-Sink-Auth and X-Sink-TLS record what the client did.

It is also the site's secondary mail server: port 25 takes ETRN DOMAIN and then sends
what it holds for that domain (/state/held/DOMAIN/*.eml) to the client that asked, as a
secondary MX does; port 110 is the ISP's multidrop mailbox (maildrop.py).
"""

from __future__ import annotations

import asyncio
import email
import os
import smtplib
import ssl
import subprocess
import uuid
from pathlib import Path

import maildrop
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

HELD = Path(os.environ.get("HELD_DIR", "/state/held"))
ETRN_LOG = Path(os.environ.get("ETRN_LOG", "/state/etrn.log"))

OUT = os.environ.get("SINK_DIR", "/state/sink")
SMARTHOST_USER, SMARTHOST_PASSWORD = b"office", b"relay-pass"


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: object) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMARTHOST_USER
          and auth_data.password == SMARTHOST_PASSWORD)
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def tls_context() -> ssl.SSLContext:
    cert, key = "/tmp/sink-cert.pem", "/tmp/sink-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=sink.remote.test", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def send_held(domain: str, client: str) -> None:
    """Deliver what is held for `domain` to the server that sent ETRN, then forget it."""
    for path in sorted((HELD / domain).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes())
        try:
            with smtplib.SMTP(client, 25, local_hostname="sink.remote.test", timeout=30) as s:
                s.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            outcome = f"kept {path.name}: {e!r}"  # a secondary MX tries again next time
        else:
            path.unlink()
            outcome = f"sent {path.name}"
        with ETRN_LOG.open("a") as log:
            log.write(f"{outcome} for {domain} to {client}\n")


class SecondaryMX(SMTP):
    @syntax("ETRN domain")
    async def smtp_ETRN(self, arg: str) -> None:
        domain = arg.strip().lstrip("@#").lower()
        if not domain:
            await self.push("501 5.5.4 Syntax: ETRN domain")
            return
        with ETRN_LOG.open("a") as log:
            log.write(f"ETRN {domain} from {self.session.peer[0]}\n")
        await self.push(f"250 2.0.0 Queuing for node {domain} started")
        # RFC 1985: the queue run starts after the reply, on a new connection
        asyncio.get_running_loop().run_in_executor(None, send_held, domain,
                                                   self.session.peer[0])


class Sink:
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-ETRN", responses[-1]]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        # Lets tests see a remote refusal (check_smtp_forward): unknown* does not exist.
        if address.lower().startswith("unknown"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        name = uuid.uuid4().hex
        auth = session.auth_data if session.authenticated else None
        login = auth.login.decode() if isinstance(auth, LoginPassword) else ""
        head = (f"X-Sink-From: <{envelope.mail_from}>\r\n"
                f"X-Sink-To: {', '.join(f'<{r}>' for r in envelope.rcpt_tos)}\r\n"
                f"X-Sink-Peer: {session.peer[0]}\r\n"
                f"X-Sink-Helo: {session.host_name}\r\n"
                f"X-Sink-Port: {server.transport.get_extra_info('sockname')[1]}\r\n"
                f"X-Sink-Auth: {login}\r\n"
                f"X-Sink-TLS: {'yes' if session.ssl else 'no'}\r\n").encode()
        tmp = os.path.join(OUT, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(head + (envelope.original_content or b""))
        os.chmod(tmp, 0o644)
        os.rename(tmp, os.path.join(OUT, f"{name}.eml"))
        return f"250 2.0.0 Ok: kept as {name}"


async def main() -> None:
    # host None: every address of both families (IPv6 where the network has it)
    os.makedirs(OUT, exist_ok=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SecondaryMX(Sink(), hostname="sink.remote.test", decode_data=False,
                            data_size_limit=None), None, 25)
    context = tls_context()
    smarthost = await loop.create_server(
        lambda: SMTP(Sink(), hostname="smarthost.remote.test", decode_data=False,
                     data_size_limit=None, tls_context=context, require_starttls=True,
                     authenticator=authenticate, auth_required=True), None, 587)
    pop3 = await maildrop.start()
    print("sink: listening on 25 (ETRN too), 587 (smarthost) and 110 (POP3 multidrop), "
          "keeping mail in", OUT, flush=True)
    async with server, smarthost, pop3:
        await asyncio.gather(server.serve_forever(), smarthost.serve_forever(),
                             pop3.serve_forever())


if __name__ == "__main__":
    asyncio.run(main())
