"""appliance.dkim_keys: the default key, per-domain keys, and `appliance print-dns`."""

from __future__ import annotations

import base64
import re
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from appliance import dkim_keys, paths
from appliance.commands import table
from appliance.dns_records import ADDRESS_PLACEHOLDER, Record


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    assert dkim_keys.ensure_default_key(d) is True
    return d


def test_default_key_files(keydir):
    private = keydir / "default" / "private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o400
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert key.key_size == 2048
    assert private.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    public = serialization.load_pem_public_key((keydir / "default" / "public").read_bytes())
    assert public.public_numbers() == key.public_key().public_numbers()
    assert (keydir / "default" / "selector").read_text() == "default\n"


def test_idempotent(keydir):
    before = {p.name: p.read_bytes() for p in (keydir / "default").iterdir()}
    assert dkim_keys.ensure_default_key(keydir) is False
    assert {p.name: p.read_bytes() for p in (keydir / "default").iterdir()} == before


def test_missing_public_and_new_selector_restored(tmp_path, keydir):
    d = tmp_path / "k"
    (d / "default").mkdir(parents=True)
    (d / "default" / "private").write_bytes((keydir / "default" / "private").read_bytes())
    assert dkim_keys.ensure_default_key(d, selector="s2026") is False
    assert (d / "default" / "public").read_bytes() == (
        keydir / "default" / "public").read_bytes()
    assert (d / "default" / "selector").read_text() == "s2026\n"


def txt_value(line: str) -> str:
    strings = re.findall(r'"([^"]*)"', line)
    assert all(len(s) <= 255 for s in strings)
    return "".join(strings)


def test_dkim_record(keydir):
    name, value = dkim_keys.dkim_txt(keydir, "example.com")
    assert name == "default._domainkey" and value.startswith("v=DKIM1;k=rsa;p=")
    line = Record(name, "TXT", value).zone_line()
    assert re.fullmatch(r'default\._domainkey IN TXT ("[^"]{1,255}" ?)+', line)
    assert txt_value(line) == value
    der = base64.b64decode(value.split("p=", 1)[1])
    public = serialization.load_der_public_key(der)
    private = serialization.load_pem_private_key(
        (keydir / "default" / "private").read_bytes(), password=None)
    assert public.public_numbers() == private.public_key().public_numbers()


def test_selector_setting_and_domain_key(tmp_path, keydir):
    settings = {"plugin_settings": {"dkim_sign": {"selector": "mail2026"}}}
    assert dkim_keys.dkim_txt(keydir, "example.com",
                              dkim_keys.default_selector(settings))[0] == "mail2026._domainkey"
    # a domain with a key of its own (SME: <dir>/<domain>/{private,selector})
    d = tmp_path / "k"
    dkim_keys.ensure_default_key(d, bits=1024)
    (d / "example.org").mkdir()
    (d / "example.org" / "private").write_bytes((keydir / "default" / "private").read_bytes())
    (d / "example.org" / "selector").write_text("org1\n")
    assert dkim_keys.key_for(d, "example.org", "default") == ("org1", d / "example.org" /
                                                             "private")
    assert dkim_keys.key_for(d, "example.com", "default") == ("default", d / "default" /
                                                             "private")
    assert dkim_keys.dkim_txt(d, "example.org")[0] == "org1._domainkey"


def test_no_key_no_dkim_record(tmp_path):
    assert dkim_keys.key_for(tmp_path, "example.com") is None
    assert dkim_keys.dkim_txt(tmp_path, "example.com") is None


def test_print_dns(tmp_path, keydir, monkeypatch, capsys):
    conf = tmp_path / "appliance.toml"
    conf.write_text('[system]\nhostname = "mail"\ndomain = "example.com"\n'
                    '[domains."example.org"]\n')
    monkeypatch.setattr(paths, "CONFIG", conf)
    monkeypatch.setattr(paths, "DKIM_KEYS", keydir)
    assert table.main(["print-dns"]) == 0
    out = capsys.readouterr().out
    assert "default._domainkey IN TXT" in out
    assert "rua=mailto:dmarc-feedback@example.com" in out
    assert table.main(["print-dns", "example.org"]) == 0
    assert "dmarc-feedback@example.org" in capsys.readouterr().out
    assert table.main(["print-dns", "not-ours.example"]) == 2


def test_print_dns_gives_mx_and_a_and_a_dmarc_address_that_exists(
        tmp_path, keydir, monkeypatch, capsys):
    from appliance import accounts
    from appliance.config import load

    conf = tmp_path / "appliance.toml"
    conf.write_text('[system]\nhostname = "mail"\ndomain = "example.com"\nadmin = "bob"\n'
                    '[users.alice]\n[users.bob]\n[domains."example.org"]\n')
    monkeypatch.setattr(paths, "CONFIG", conf)
    monkeypatch.setattr(paths, "DKIM_KEYS", keydir)
    assert table.main(["print-dns"]) == 0
    records = [line for line in capsys.readouterr().out.splitlines()
               if line and not line.startswith(";")]
    assert records[0] == "@ IN MX 10 mail.example.com."
    assert records[1].startswith(f"mail IN A {ADDRESS_PLACEHOLDER} ; placeholder")
    assert [r.split()[0] for r in records[2:5]] == ["default._domainkey", "@", "_dmarc"]
    rua = records[4].split("rua=mailto:")[1].split(";")[0]
    assert accounts.addresses(load(conf))[rua] == ["bob@example.com"]  # the admin
    assert table.main(["print-dns", "example.org"]) == 0
    out = capsys.readouterr().out
    assert "@ IN MX 10 mail.example.com." in out
    assert f"; mail.example.com. IN A {ADDRESS_PLACEHOLDER}" in out
    rua = out.split("rua=mailto:")[1].split(";")[0]
    assert rua == "dmarc-feedback@example.org"
    assert accounts.addresses(load(conf))[rua] == ["bob@example.com"]
