"""A daemon left at its defaults serves with the schema's defaults.

main.py used to fall back to values of its own for keys the settings file might lack;
min_data_rate's was 0 (no minimum) against the schema's 500 bytes/s, and a daemon's TLS
ciphers fell back to OpenSSL's list rather than tls.ciphers. Every key is in the file
now, so these check what a default appliance.toml gives the listener.
"""

from __future__ import annotations

from appliance.config.schema import MODERN_CIPHERS, SECTIONS
from tests.smtpd.conftest import StartDaemon


def default(section: str, key: str) -> object:
    found = next(s for s in SECTIONS if s.path == section).key(key)
    assert found is not None
    return found.default


async def test_the_minimum_data_rate_is_the_schema_default(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon("smtp")
    assert daemon.protocol().min_data_rate == default("smtpd", "min_data_rate") == 500


async def test_a_daemon_without_ciphers_of_its_own_uses_tls_ciphers(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon("submission")
    assert default("smtpd.submission", "tls_ciphers") == ""
    assert daemon.settings.daemons["submission"].tls_ciphers == MODERN_CIPHERS
    assert daemon.settings.daemons["submission"].tls_before_auth is True
