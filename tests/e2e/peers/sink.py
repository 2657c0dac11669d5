"""The e2e tests' remote mail server: accepts everything and keeps it as files.

Runs in a container of the appliance image (its venv has aiosmtpd) at the MX of the
test's remote domains; each message lands in /state/sink/ as an .eml with the envelope
in X-Sink-* headers, so tests read what the appliance really sent over the wire.
"""

from __future__ import annotations

import asyncio
import os
import uuid

from aiosmtpd.smtp import SMTP, Envelope, Session

OUT = os.environ.get("SINK_DIR", "/state/sink")


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
        head = (f"X-Sink-From: <{envelope.mail_from}>\r\n"
                f"X-Sink-To: {', '.join(f'<{r}>' for r in envelope.rcpt_tos)}\r\n"
                f"X-Sink-Peer: {session.peer[0]}\r\n").encode()
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
    print("sink: listening on 25, keeping mail in", OUT, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
