"""Fixtures for testing one plugin in process: a stub resolver and event builders.

    def test_x(make_plugin, conn, txn, dns):
        dns.add("2.0.0.127.zen.example", "A", "127.0.0.2")
        plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"])
        result = await plugin.hook_connect(conn(ip="127.0.0.2"))
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config import parse
from appliance.config.default import default_toml
from appliance.services.smtpd import settings as smtpd_settings
from appliance.smtpd.dns import DNSTempError, Resolver
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, load
from appliance.smtpd.settings import Settings, from_dict
from tests.clock import Clock


class StubResolver(Resolver):
    """Answers from a table; names in `timeouts` raise DNSTempError like a dead server."""

    def __init__(self) -> None:
        super().__init__(nameservers=["192.0.2.53"], timeout=1)
        self.records: dict[tuple[str, str], list[str]] = {}
        self.timeouts: set[str] = set()
        self.asked: list[tuple[str, str]] = []

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    async def query(self, name: str, rdtype: str) -> list[Any]:
        import asyncio

        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype

        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        key = (name.lower().rstrip("."), rdtype)
        self.asked.append(key)
        if key[0] in self.timeouts:
            raise DNSTempError(f"{rdtype} {name}: timeout")
        out = []
        for text in self.records.get(key, []):
            if rdtype == "TXT" and not text.startswith('"'):
                # long TXT values are split in 255-byte strings, as on the wire
                chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
                text = " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)
            out.append(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype),
                                           text))
        return out


@pytest.fixture
def dns() -> StubResolver:
    return StubResolver()


@pytest.fixture
def base_settings() -> dict[str, Any]:
    """The daemon settings rendered from a default appliance.toml with users alice, bob,
    in their JSON form (what the daemons read), for a test to change."""
    text = default_toml() + """
[users.alice]
full_name = "Alice"
[users.bob]
visible = "internal"
[groups.sales]
members = ["alice", "bob"]
[pseudonyms."info"]
account = "alice"
[domains."example.org"]
[domains."delegated.example"]
mail_server = "192.0.2.25"
"""
    return smtpd_settings(parse(text)).to_dict()


@pytest.fixture
def make_plugin(dns: StubResolver, base_settings: dict[str, Any], tmp_path: Path
                ) -> Callable[..., BasePlugin]:
    """make_plugin(name, **section_overrides, settings=None) -> a loaded plugin.

    The settings (base_settings, or SETTINGS: a Settings or its JSON form) with the
    plugin's section overridden go through the daemons' own typed constructor, so a value
    the schema refuses raises PluginError here as it does in a daemon."""

    def make(name: str, settings: Settings | dict[str, Any] | None = None,
             **config: Any) -> BasePlugin:
        s = settings.to_dict() if isinstance(settings, Settings) else copy.deepcopy(
            settings if settings is not None else base_settings)
        if config:
            s["plugin_settings"][name].update(config)
        typed = from_dict(s)
        ctx = Context(resolver=dns, state_dir=tmp_path / "state", hostname=typed.hostname)
        return load(name, typed, ctx)

    return make


@pytest.fixture
def conn() -> Callable[..., Connection]:
    def make(ip: str = "198.51.100.7", daemon: str = "smtp", helo: str = "mx.sender.example",
             **kw: Any) -> Connection:
        c = Connection(daemon=daemon, remote_ip=ip, remote_port=40000,
                       local_port={"smtp": 25, "smtps": 465, "submission": 587}[daemon], **kw)
        c.helo = helo
        return c

    return make


@pytest.fixture
def txn() -> Callable[..., Transaction]:
    def make(sender: str = "someone@sender.example", recipients: tuple[str, ...] = (
             "alice@example.com",), data: bytes | str = b"") -> Transaction:
        t = Transaction(sender=sender, recipients=list(recipients))
        if isinstance(data, str):
            data = data.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        t.data = data
        return t

    return make


def message(headers: dict[str, str] | None = None, body: str = "Hello.\n") -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    h = {"From": "Someone <someone@sender.example>", "To": "alice@example.com",
         "Subject": "test", "Date": "Sat, 21 Nov 2026 10:00:00 +0000",
         "Message-ID": "<t1@sender.example>"}
    h.update(headers or {})
    text = "".join(f"{k}: {v}\n" for k, v in h.items() if v is not None) + "\n" + body
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()




@pytest.fixture
def clock() -> Clock:
    return Clock()
