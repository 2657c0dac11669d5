"""An ISP's multidrop mailbox for the e2e tests: POP3 (RFC 1939) over /state/drop/.

Every .eml in the folder is one message of the single account (user "office", password
`drop"pass\1`: a quote and a backslash, so the appliance's fetchmailrc quoting is
proven by a real login); DELE removes the file at QUIT, as a POP3 server's UPDATE state does. The
tests put messages there and read what the appliance's fetchmail left behind.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

DROP = Path(os.environ.get("DROP_DIR", "/state/drop"))
USER, PASSWORD = "office", 'drop"pass\\1'


class Session:
    def __init__(self) -> None:
        self.user = ""
        self.messages: list[Path] = []
        self.deleted: set[int] = set()

    def _pick(self, arg: str) -> Path | None:
        if not arg.isdigit() or not 0 < int(arg) <= len(self.messages):
            return None
        n = int(arg)
        return None if n in self.deleted else self.messages[n - 1]

    def answer(self, line: str) -> tuple[list[str], bool]:
        """(reply lines, close afterwards) for one command."""
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb == "QUIT":
            for n in self.deleted:
                self.messages[n - 1].unlink(missing_ok=True)
            return ["+OK bye"], True
        if verb == "CAPA":
            return ["+OK", "USER", "UIDL", "TOP", "."], False
        if verb == "USER":
            self.user = arg
            return ["+OK"], False
        if verb == "PASS":
            if (self.user, arg) != (USER, PASSWORD):
                return ["-ERR [AUTH] wrong user or password"], True
            self.messages = sorted(DROP.glob("*.eml"))
            return [f"+OK {len(self.messages)} messages"], False
        if not self.messages and verb not in ("NOOP", "STAT", "LIST", "UIDL"):
            return ["-ERR not logged in or no such message"], False
        live = [(n, p) for n, p in enumerate(self.messages, 1) if n not in self.deleted]
        if verb == "NOOP":
            return ["+OK"], False
        if verb == "STAT":
            return [f"+OK {len(live)} {sum(p.stat().st_size for _, p in live)}"], False
        if verb in ("LIST", "UIDL") and not arg:
            value = (lambda p: p.stat().st_size) if verb == "LIST" else (lambda p: p.stem)
            return ["+OK", *(f"{n} {value(p)}" for n, p in live), "."], False
        path = self._pick(arg.split(" ")[0])
        if path is None:
            return ["-ERR no such message"], False
        n = int(arg.split(" ")[0])
        if verb == "LIST":
            return [f"+OK {n} {path.stat().st_size}"], False
        if verb == "UIDL":
            return [f"+OK {n} {path.stem}"], False
        if verb == "DELE":
            self.deleted.add(n)
            return ["+OK deleted"], False
        if verb in ("RETR", "TOP"):
            text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
            head, _, body = text.partition("\n\n")
            lines = head.split("\n") + [""]
            if verb == "TOP":
                lines += body.split("\n")[: int(arg.split(" ")[1] or 0)]
            else:
                lines += body.split("\n")
            return ["+OK", *("." + ln if ln.startswith(".") else ln for ln in lines), "."], False
        return ["-ERR unknown command"], False


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    session = Session()
    writer.write(b"+OK isp.remote.test POP3 ready\r\n")
    try:
        while line := await reader.readline():
            lines, close = session.answer(line.decode("utf-8", "replace").rstrip("\r\n"))
            writer.write("".join(f"{ln}\r\n" for ln in lines).encode())
            await writer.drain()
            if close:
                break
    finally:
        writer.close()


async def start() -> asyncio.AbstractServer:
    DROP.mkdir(parents=True, exist_ok=True)
    return await asyncio.start_server(serve, "0.0.0.0", 110)
