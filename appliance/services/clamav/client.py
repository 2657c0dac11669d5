"""A small asyncio client for clamd's socket protocol (INSTREAM, VERSION, PING).

Written here rather than taken from PyPI: the async clients there (aioclamd) speak TCP
only and read the message in 1 KiB chunks, each through a worker thread, which costs
more than the scan for a 15 MB message. The protocol is clamd(8)'s: `z`-prefixed
commands end in NUL, INSTREAM sends chunks prefixed with their length (4 bytes, network
order) and a zero-length chunk, and the reply is one NUL-terminated line.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from pathlib import Path

CHUNK = 256 * 1024  # well below clamd's StreamMaxLength; few round trips


class ClamdError(Exception):
    """clamd could not be reached, timed out or answered with an error."""


@dataclass(frozen=True)
class ScanResult:
    infected: bool
    signature: str  # the signature name when infected

    @property
    def unscannable(self) -> bool:
        """Past clamd's limits (AlertExceedsMax): not fully scanned."""
        return self.signature.startswith("Heuristics.Limits.Exceeded")


async def _request(socket: Path, command: bytes, payload: bytes | None,
                   timeout: float) -> str:
    async def talk() -> str:
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket))
        except OSError as e:
            raise ClamdError(f"cannot connect to clamd at {socket}: {e.strerror or e}") from e
        try:
            writer.write(b"z" + command + b"\0")
            if payload is not None:
                view = memoryview(payload)
                for start in range(0, len(view), CHUNK):
                    chunk = view[start:start + CHUNK]
                    writer.write(struct.pack("!L", len(chunk)))
                    writer.write(chunk)
                    await writer.drain()
                writer.write(struct.pack("!L", 0))
            await writer.drain()
            reply = await reader.readuntil(b"\0")  # at most the reader's 64 KiB limit
        except asyncio.LimitOverrunError as e:
            raise ClamdError("clamd's reply is too long") from e
        except asyncio.IncompleteReadError as e:
            raise ClamdError("clamd closed the connection without a reply") from e
        except OSError as e:
            raise ClamdError(f"clamd connection failed: {e}") from e
        finally:
            writer.close()
        return reply[:-1].decode("utf-8", "replace").strip()

    try:
        return await asyncio.wait_for(talk(), timeout)
    except TimeoutError:
        raise ClamdError(f"clamd did not answer within {timeout:g} s") from None


async def instream(socket: Path, data: bytes, timeout: float) -> ScanResult:
    """Scan `data` (a whole message: clamd decodes MIME itself)."""
    reply = await _request(socket, b"INSTREAM", data, timeout)
    # "stream: OK", "stream: Eicar-Test-Signature FOUND", "... ERROR"
    if reply.endswith(" FOUND"):
        return ScanResult(True, reply.removeprefix("stream:").removesuffix(" FOUND").strip())
    if reply.endswith(": OK"):
        return ScanResult(False, "")
    raise ClamdError(f"clamd: {reply.removesuffix(' ERROR')}")


async def version(socket: Path, timeout: float = 5) -> str:
    """'ClamAV 1.4.6/27463/Fri Nov 20 08:32:00 2026': engine/signature version/date."""
    return await _request(socket, b"VERSION", None, timeout)
