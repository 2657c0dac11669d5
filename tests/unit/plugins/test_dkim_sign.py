"""dkim_sign: signs our users' mail; a sign -> verify round trip through the dkim plugin."""

from __future__ import annotations

import logging

import dkim
import pytest

from appliance import dkim_keys
from appliance.dns_records import quoted
from tests.unit.plugins.conftest import message


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    dkim_keys.ensure_default_key(d)
    return d


@pytest.fixture
def signer(make_plugin, base_settings, keydir):
    def make(**config):
        settings = dict(base_settings, dkim_keys=str(keydir))
        config.setdefault("enabled", True)
        return make_plugin("dkim_sign", settings=settings, **config)

    return make


def publish(dns, keydir, domain="example.com", selector="default"):
    """Serve the DKIM record exactly as print-dns tells the admin to publish it."""
    settings = {"plugin_settings": {"dkim_sign": {"selector": selector}}}
    name, text = dkim_keys.dkim_txt(keydir, domain, dkim_keys.default_selector(settings))
    dns.add(f"{name}.{domain}", "TXT", quoted(text))  # 255-byte strings, as published


def ours(txn, from_="Alice <alice@example.com>", **headers):
    return txn(sender="alice@example.com", recipients=("friend@elsewhere.example",),
               data=message({"From": from_, **headers}))


async def test_round_trip(signer, make_plugin, conn, txn, dns, keydir):
    publish(dns, keydir)
    plugin = signer()
    t = ours(txn)
    original = t.data
    assert await plugin.hook_queue(conn(daemon="submission", auth_user="alice"), t) is None
    assert t.data.endswith(original)
    sig = t.data[: len(t.data) - len(original)]
    assert sig.endswith(b"\r\n") and b"\n" not in sig.replace(b"\r\n", b"")
    unfolded = sig.replace(b"\r\n ", b" ")
    assert unfolded.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; "
                               b"d=example.com; ")
    assert b" s=default;" in unfolded
    # our own verifier, DNS from the stub, record as print-dns prints it
    verifier = make_plugin("dkim")
    await verifier.hook_data_post(conn(), t)
    [result] = t.dkim
    assert (result.domain, result.selector, result.passed) == ("example.com", "default", True)


async def test_round_trip_with_dkimpy(signer, conn, txn, keydir):
    plugin = signer(selector="s1")
    t = ours(txn, Cc="bob@example.com", **{"Reply-To": "info@example.com"})
    await plugin.hook_queue(conn(relay_client=True), t)
    value = dkim_keys.dkim_txt(keydir, "example.com", "s1")[1]

    def dnsfunc(name, timeout=5):
        assert name == b"s1._domainkey.example.com."
        return value.encode()

    assert dkim.verify(t.data, dnsfunc=dnsfunc)
    h = dkim.util.parse_tag_value(t.data.split(b"\r\n\r\n")[0].split(b"DKIM-Signature:")[1]
                                  .replace(b"\r\n", b""))[b"h"]
    signed = [x.strip() for x in h.split(b":")]
    assert signed.count(b"from") == 2  # over-signed
    assert b"cc" in signed and b"reply-to" in signed and b"subject" in signed


async def test_unauthenticated_not_signed(signer, conn, txn):
    t = ours(txn)
    before = t.data
    await signer().hook_queue(conn(), t)
    assert t.data == before


@pytest.mark.parametrize("from_", ["x@elsewhere.example", "x@sub.example.com"])
async def test_foreign_domain_not_signed(signer, conn, txn, from_):
    t = ours(txn, from_=from_)
    before = t.data
    await signer().hook_queue(conn(auth_user="alice"), t)
    assert t.data == before


async def test_envelope_domain_without_from(signer, conn, txn):
    t = ours(txn, from_=None)
    await signer().hook_queue(conn(auth_user="alice"), t)
    assert t.data.startswith(b"DKIM-Signature:") and b"d=example.com;" in t.data


async def test_domain_opted_out(make_plugin, base_settings, conn, txn, keydir):
    settings = dict(base_settings, dkim_keys=str(keydir))
    settings["domains"] = dict(base_settings["domains"])
    settings["domains"]["example.org"] = dict(settings["domains"]["example.org"],
                                              dkim_signing=False)
    plugin = make_plugin("dkim_sign", settings=settings, enabled=True)
    t = ours(txn, from_="alice@example.org")
    before = t.data
    await plugin.hook_queue(conn(auth_user="alice"), t)
    assert t.data == before
    t2 = ours(txn)
    await plugin.hook_queue(conn(auth_user="alice"), t2)
    assert t2.data.startswith(b"DKIM-Signature:")


async def test_disabled(signer, conn, txn):
    t = ours(txn)
    before = t.data
    await signer(enabled=False).hook_queue(conn(auth_user="alice"), t)
    assert t.data == before


async def test_domain_key_preferred(make_plugin, base_settings, conn, txn, tmp_path, keydir):
    d = tmp_path / "keys"
    (d / "example.org").mkdir(parents=True)
    (d / "example.org" / "private").write_bytes((keydir / "default" / "private").read_bytes())
    (d / "example.org" / "selector").write_text("org1\n")
    plugin = make_plugin("dkim_sign", settings=dict(base_settings, dkim_keys=str(d)),
                         enabled=True)
    t = ours(txn, from_="alice@example.org")
    await plugin.hook_queue(conn(auth_user="alice"), t)
    assert b"d=example.org;" in t.data and b"s=org1;" in t.data


async def test_missing_key_logged_once_and_sent_unsigned(make_plugin, base_settings, conn,
                                                         txn, tmp_path, caplog):
    plugin = make_plugin("dkim_sign", settings=dict(base_settings, dkim_keys=str(tmp_path)),
                         enabled=True)
    caplog.set_level(logging.ERROR, "appliance.smtpd.dkim_sign")
    for _ in range(2):
        t = ours(txn)
        before = t.data
        assert await plugin.hook_queue(conn(auth_user="alice"), t) is None
        assert t.data == before
    assert len([r for r in caplog.records if "no DKIM key" in r.message]) == 1


def test_bad_selector(signer):
    from appliance.smtpd.plugins import PluginError

    with pytest.raises(PluginError):
        signer(selector="a b")


async def test_unreadable_key_files_mean_unsigned_mail_never_a_refusal(
        make_plugin, base_settings, conn, txn, tmp_path, keydir, caplog):
    d = tmp_path / "keys"
    (d / "example.com").mkdir(parents=True)
    (d / "example.com" / "private").write_bytes((keydir / "default" / "private").read_bytes())
    (d / "example.com" / "selector").mkdir()  # a directory where a file belongs
    plugin = make_plugin("dkim_sign", settings=dict(base_settings, dkim_keys=str(d)),
                         enabled=True)
    caplog.set_level(logging.ERROR, "appliance.smtpd.dkim_sign")
    for _ in range(2):
        t = ours(txn)
        before = t.data
        assert await plugin.hook_queue(conn(auth_user="alice"), t) is None
        assert t.data == before
    assert len([r for r in caplog.records if "cannot read" in r.message]) == 1
