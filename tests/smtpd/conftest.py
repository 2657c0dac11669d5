"""Fixtures for the in-process SMTP daemon tests: TLS files, a fake Postfix, daemons."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.smtpd.dns import Resolver
from appliance.smtpd.main import Daemon, listen_socket
from appliance.smtpd.settings import from_dict
from appliance.tls import ensure_self_signed
from tests.smtpd.support import DOMAIN, HOSTNAME, FakePostfix, make_settings

StartDaemon = Callable[..., Awaitable[Daemon]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            # Port 25 deliberately allows TLS 1.1 (old senders); Python deprecates the enum.
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning"))
            # aiosmtpd warns when AUTH does not require STARTTLS; 465 is TLS from byte one.
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:Requiring AUTH while not requiring TLS"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate for the whole run (RSA key generation is slow)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    ensure_self_signed(cert, key, HOSTNAME, DOMAIN)
    return cert, key


class LoopbackDNS(Resolver):
    """The daemons' resolver in these tests: answers locally, never leaves the machine.

    Every domain has an MX and an address (so resolvable_fromhost passes); there are no
    TXT records (no SPF, DKIM or DMARC policies) and no block-list listings, except the
    names a test puts in `records`.
    """

    records: dict[tuple[str, str], list[str]] = {}

    async def query(self, name: str, rdtype: str) -> list[Any]:
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype

        name = name.lower().rstrip(".")
        values = self.records.get((name, rdtype))
        if values is None:
            listed_zone = any(name.endswith(z) for z in (".bl.test", ".dbl.test"))
            values = {"MX": [f"10 mx.{name}."], "A": ["93.184.216.34"]}.get(rdtype, [])
            if listed_zone:
                values = []
        return [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), v)
                for v in values]


@pytest.fixture(autouse=True)
def _loopback_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.smtpd.pipeline

    LoopbackDNS.records = {}
    monkeypatch.setattr(appliance.smtpd.pipeline, "Resolver", LoopbackDNS)


@pytest.fixture(autouse=True)
def _quiet_aiosmtpd() -> None:
    # aiosmtpd logs every command line at INFO (the daemon does the same in main.py).
    logging.getLogger("mail.log").setLevel(logging.WARNING)


@pytest.fixture
async def fake_postfix() -> AsyncIterator[FakePostfix]:
    fake = FakePostfix()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def start_daemon(
    fake_postfix: FakePostfix, tls_files: tuple[Path, Path]
) -> AsyncIterator[StartDaemon]:
    """start_daemon(name="smtp", *, local_networks, extra_toml, handoff_port, timeout,
    trusted_proxies).

    A running Daemon on 127.0.0.1 or HOST (an ephemeral port: `port(daemon)`), handing off to the
    fake Postfix unless `handoff_port` says otherwise. AUTH failures are not delayed.
    """
    started: list[Daemon] = []

    async def start(name: str = "smtp", *, local_networks: list[str] | None = None,
                    extra_toml: str = "", handoff_port: int | None = None,
                    timeout: float | None = None,
                    trusted_proxies: list[str] | None = None,
                    host: str = "127.0.0.1") -> Daemon:
        settings = make_settings(
            cert=tls_files[0], key=tls_files[1],
            handoff_port=fake_postfix.port if handoff_port is None else handoff_port,
            local_networks=local_networks, extra_toml=extra_toml,
        )
        if timeout is not None:  # below the toml's minimum of 5 s, to keep tests fast
            settings["timeout"] = timeout
        if trusted_proxies is not None:  # network.trusted_proxies
            settings["trusted_proxies"] = trusted_proxies
        daemon = Daemon(name, from_dict(settings), host=host, sock=listen_socket(0, host))
        daemon.handler.state.passwords.failure_delay = 0
        await daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        await daemon.stop(grace=1)
