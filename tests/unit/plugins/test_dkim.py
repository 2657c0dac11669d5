"""dkim: signature verification through the stub resolver; never refuses."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.plugins.conftest import message


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    """(PEM private key, DKIM TXT record) for the tests of this module."""
    k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = k.private_bytes(serialization.Encoding.PEM,
                          serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    der = k.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def signed(pem: bytes, domain: str = "sender.example", selector: str = "s1",
           data: bytes | None = None) -> bytes:
    data = data or message()
    return dkim.sign(data, selector.encode(), domain.encode(), pem) + data


async def test_valid_signature_passes(make_plugin, conn, txn, dns, key):
    dns.add("s1._domainkey.sender.example", "TXT", key[1])
    plugin = make_plugin("dkim")
    t = txn(data=signed(key[0]))
    before = t.data
    assert await plugin.hook_data_post(conn(), t) is None
    [sig] = t.dkim
    assert (sig.domain, sig.selector, sig.passed, sig.reason) == (
        "sender.example", "s1", True, "pass")
    assert t.auth_results == ["dkim=pass header.d=sender.example header.s=s1"]
    assert t.data == before  # dmarc (enabled) writes the header


async def test_tampered_body_fails(make_plugin, conn, txn, dns, key):
    dns.add("s1._domainkey.sender.example", "TXT", key[1])
    plugin = make_plugin("dkim")
    t = txn(data=signed(key[0]) + b"tampered\r\n")
    assert await plugin.hook_data_post(conn(), t) is None
    [sig] = t.dkim
    assert not sig.passed and sig.result == "fail"
    assert t.auth_results[0].startswith("dkim=fail (body hash mismatch) ")


async def test_tampered_header_fails(make_plugin, conn, txn, dns, key):
    dns.add("s1._domainkey.sender.example", "TXT", key[1])
    plugin = make_plugin("dkim")
    t = txn(data=signed(key[0]).replace(b"Subject: test", b"Subject: changed"))
    assert await plugin.hook_data_post(conn(), t) is None
    assert t.dkim[0].reason == "fail (signature did not verify)"


async def test_missing_key_is_permerror(make_plugin, conn, txn, key):
    plugin = make_plugin("dkim")
    t = txn(data=signed(key[0]))
    assert await plugin.hook_data_post(conn(), t) is None
    assert t.dkim[0].reason == "permerror (no key published)"


async def test_key_lookup_timeout_is_temperror(make_plugin, conn, txn, dns, key):
    dns.timeouts.add("s1._domainkey.sender.example")
    plugin = make_plugin("dkim")
    t = txn(data=signed(key[0]))
    assert await plugin.hook_data_post(conn(), t) is None  # never a refusal
    [sig] = t.dkim
    assert not sig.passed and sig.result == "temperror"
    assert t.auth_results[0].startswith("dkim=temperror (")


async def test_two_signatures(make_plugin, conn, txn, dns, key):
    dns.add("s1._domainkey.sender.example", "TXT", key[1])
    data = signed(key[0], domain="other.example", selector="s2", data=signed(key[0]))
    plugin = make_plugin("dkim")
    t = txn(data=data)
    await plugin.hook_data_post(conn(), t)
    assert [(s.domain, s.result) for s in t.dkim] == [
        ("other.example", "permerror"), ("sender.example", "pass")]


async def test_no_signature(make_plugin, conn, txn, dns):
    plugin = make_plugin("dkim")
    t = txn(data=message())
    assert await plugin.hook_data_post(conn(), t) is None
    assert t.dkim == []
    assert t.auth_results == ["dkim=none"]
    assert dns.asked == []


async def test_writes_header_when_dmarc_is_off(make_plugin, base_settings, conn, txn, dns,
                                               key):
    dns.add("s1._domainkey.sender.example", "TXT", key[1])
    settings = dict(base_settings)
    settings["plugin_settings"] = dict(base_settings["plugin_settings"],
                                       dmarc=dict(base_settings["plugin_settings"]["dmarc"],
                                                  enabled=False))
    plugin = make_plugin("dkim", settings=settings)
    t = txn(data=signed(key[0]))
    await plugin.hook_data_post(conn(), t)
    assert t.data.startswith(b"Authentication-Results: mail.example.com;\r\n\t"
                             b"dkim=pass header.d=sender.example header.s=s1\r\n")


async def test_disabled_and_trusted_skip(make_plugin, conn, txn, key):
    t = txn(data=signed(key[0]))
    assert await make_plugin("dkim", enabled=False).hook_data_post(conn(), t) is None
    assert await make_plugin("dkim").hook_data_post(conn(relay_client=True), t) is None
    assert t.dkim is None
