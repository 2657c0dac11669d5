"""The e2e tests' remote domain with MTA-STS and DANE: a policy server and an MX.

Runs in a container of the appliance image (started by tests/e2e/test_83_mta_sts_dane.py
on the test network). Everything it serves comes from STS_DIR (written by the test):

- port 443: https://mta-sts.DOMAIN/.well-known/mta-sts.txt from STS_DIR/policies/DOMAIN.txt
  (the Host header picks the file), with STS_DIR/https-cert.pem and https-key.pem: a
  certificate the test signed with its own CA, which it added to the appliance's trust;
- port 25: an MX that offers STARTTLS with STS_DIR/mx-cert.pem and mx-key.pem, a
  certificate nobody trusts and whose key no TLSA record names, and keeps what it is
  sent in /state/sink as the sink does (so a test sees mail that should not have come).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import ssl
import threading
from pathlib import Path

from aiosmtpd.smtp import SMTP
from sink import Sink

STS_DIR = Path(os.environ.get("STS_DIR", "/state/sts"))


class Policy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        domain = host.removeprefix("mta-sts.")
        path = STS_DIR / "policies" / f"{domain}.txt"
        if self.path != "/.well-known/mta-sts.txt" or not host.startswith("mta-sts.") \
                or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_policies() -> None:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Policy)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(STS_DIR / "https-cert.pem", STS_DIR / "https-key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


async def main() -> None:
    threading.Thread(target=serve_policies, daemon=True).start()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(STS_DIR / "mx-cert.pem", STS_DIR / "mx-key.pem")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="mx.sts.test", decode_data=False,
                     data_size_limit=None, tls_context=context), "0.0.0.0", 25)
    print("stspeer: policies on 443, an MX with STARTTLS on 25", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
