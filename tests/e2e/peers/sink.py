"""The e2e tests' remote mail server: accepts everything and keeps it as files.

Runs in a container of the appliance image (its venv has aiosmtpd) at the MX of the
test's remote domains; each message lands in /state/sink/ as an .eml with the envelope
in X-Sink-* headers, so tests read what the appliance really sent over the wire.

Port 587 plays an ISP's smarthost: STARTTLS, then AUTH (user "office", password
"relay-pass") is required; X-Sink-Auth and X-Sink-TLS record what the client did.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

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


class Sink:
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
    os.makedirs(OUT, exist_ok=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="sink.remote.test", decode_data=False,
                     data_size_limit=None), "0.0.0.0", 25)
    context = tls_context()
    smarthost = await loop.create_server(
        lambda: SMTP(Sink(), hostname="smarthost.remote.test", decode_data=False,
                     data_size_limit=None, tls_context=context, require_starttls=True,
                     authenticator=authenticate, auth_required=True), "0.0.0.0", 587)
    print("sink: listening on 25 and 587 (smarthost), keeping mail in", OUT, flush=True)
    async with server, smarthost:
        await asyncio.gather(server.serve_forever(), smarthost.serve_forever())


if __name__ == "__main__":
    asyncio.run(main())
