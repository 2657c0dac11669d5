"""Small stand-ins for spamd and clamd that speak their real socket protocols.

The unit tests run without the container; the plugins' talk with the real spamd and
clamd is proven in tests/e2e/test_70_content_filters.py. These servers answer like the
real ones for the inputs the tests use: GTUBE scores 1000, the EICAR test string is a
virus, anything else is clean. `fail` makes them hang up without an answer.
"""

from __future__ import annotations

import asyncio
import email
import struct
from pathlib import Path

from tests.samples import EICAR, GTUBE


class FakeDaemon:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[bytes] = []
        self.fail = False
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> FakeDaemon:
        self.server = await asyncio.start_unix_server(self._serve, str(self.path))
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self.fail:
                await self.answer(reader, writer)
        finally:
            writer.close()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        raise NotImplementedError


class FakeSpamd(FakeDaemon):
    """SPAMC/1.5 SYMBOLS: 'Spam: True ; 1000.0 / 5.0' and the rule names as body.
    TELL: 'DidSet: local' while `learns` (spamd leaves it out when it learned nothing)."""

    learns = True

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        if head.startswith(b"TELL "):
            did_set = b"DidSet: local\r\n" if self.learns else b""
            writer.write(b"SPAMD/1.1 0 EX_OK\r\n" + did_set + b"\r\n")
            await writer.drain()
            return
        score, rules = (1000.0, b"GTUBE,MISSING_DATE") if GTUBE in body else (1.2, b"")
        writer.write(b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: %s ; %.1f / 5.0"
                     b"\r\n\r\n%s" % (len(rules), b"True" if score >= 5 else b"False",
                                      score, rules))
        await writer.drain()


class FakeClamd(FakeDaemon):
    """zINSTREAM: 'stream: Eicar-Test-Signature FOUND' or 'stream: OK' (or `verdict`)."""

    verdict: bytes | None = None

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        command = await reader.readuntil(b"\0")
        assert command == b"zINSTREAM\0", command
        data = b""
        while size := struct.unpack("!L", await reader.readexactly(4))[0]:
            data += await reader.readexactly(size)
        self.requests.append(data)
        # clamd decodes MIME: look into every part as well
        msg = email.message_from_bytes(data)
        parts = [p.get_payload(decode=True) or b"" for p in msg.walk() if not p.is_multipart()]
        infected = any(EICAR in blob for blob in [data, *parts])
        reply = b"stream: Eicar-Test-Signature FOUND" if infected else b"stream: OK"
        if self.verdict is not None:
            reply = self.verdict
        writer.write(reply + b"\0")
        await writer.drain()
