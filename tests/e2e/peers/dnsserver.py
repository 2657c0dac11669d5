"""The e2e tests' DNS: an authoritative server for the test zones, on the test network.

Runs in a container of the appliance image (its venv has dnspython). Records come from
ZONES (JSON, rewritten by the tests while it runs; re-read when it changes):

    {"names": {"example.test": {"MX": ["10 mx.example.test."], "TXT": ["v=spf1 -all"]}},
     "drop": ["timeout.test"]}

A name in "drop" (or below it) is never answered, like a dead server, so the tests can
show that a DNS timeout never turns into a permanent refusal. Other names: NXDOMAIN.
Zones under "signed" (["dane.test"]) are answered with DNSSEC signatures (dnssign.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dnssign import SignedZone

ZONES = os.environ.get("ZONES", "/state/zones.json")


class Zones:
    def __init__(self, path: str) -> None:
        self.path = path
        self.mtime = -1.0
        self.names: dict[str, dict[str, list[str]]] = {}
        self.drop: list[str] = []
        self.signed: dict[str, SignedZone] = {}

    def refresh(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            return
        if mtime == self.mtime:
            return
        with open(self.path) as f:
            data = json.load(f)
        self.names = {k.lower().rstrip("."): v for k, v in data.get("names", {}).items()}
        self.drop = [d.lower().rstrip(".") for d in data.get("drop", [])]
        for zone in data.get("signed", []):
            if (zone := zone.lower().rstrip(".")) not in self.signed:
                self.signed[zone] = SignedZone(zone)
        self.mtime = mtime

    def answer(self, wire: bytes) -> bytes | None:
        self.refresh()
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        if any(name == d or name.endswith("." + d) for d in self.drop):
            return None
        for signed in self.signed.values():
            if signed.contains(question.name):
                signed.answer(query, response, self.names, _txt)
                return response.to_wire(max_size=65535)
        rdtype = dns.rdatatype.to_text(question.rdtype)
        records = self.names.get(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = records.get(rdtype, [])
            if not values and "CNAME" in records:
                rdtype, values = "CNAME", records["CNAME"]
            if values:
                texts = [_txt(v) if rdtype == "TXT" else v for v in values]
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, rdtype, texts))
        return response.to_wire(max_size=65535)


def _txt(value: str) -> str:
    if value.startswith('"'):
        return value
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


class UDP(asyncio.DatagramProtocol):
    def __init__(self, zones: Zones) -> None:
        self.zones = zones

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            out = self.zones.answer(data)
        except Exception as e:  # a bad packet must not stop the server
            print(f"dns: bad query from {addr}: {e}", file=sys.stderr)
            return
        if out is not None:
            if len(out) > 512:
                msg = dns.message.from_wire(out)
                msg.flags |= dns.flags.TC
                msg.answer = []
                out = msg.to_wire()
            self.transport.sendto(out, addr)  # type: ignore[attr-defined]


async def tcp(zones: Zones, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            size = int.from_bytes(await reader.readexactly(2), "big")
            out = zones.answer(await reader.readexactly(size))
            if out is None:
                await asyncio.sleep(30)
                break
            writer.write(len(out).to_bytes(2, "big") + out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    zones = Zones(ZONES)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: UDP(zones), local_addr=("0.0.0.0", 53))
    server = await asyncio.start_server(lambda r, w: tcp(zones, r, w), "0.0.0.0", 53)
    print("dns: serving", ZONES, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
