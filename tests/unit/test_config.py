"""appliance.toml: the default file, validation errors that name file/line/key/value."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load, parse
from appliance.config.default import default_toml
from appliance.config.schema import COLLECTIONS, SECTIONS


def test_default_file_is_valid_and_has_sme_defaults() -> None:
    config = parse(default_toml())
    assert config.get("smtpd.smtp.instances") == 40
    assert config.get("smtpd.smtps.instances") == 10
    assert config.get("smtpd.submission.instances") == 10
    assert config.get("smtpd.smtp.instances_per_ip") == 5
    assert config.get("smtpd.max_message_size") == 15000000
    assert config.get("queue.lifetime") == 604800
    assert config.get("smtpd.submission.tls_min_version") == "TLSv1.2"
    # opportunistic: a sender without TLS 1.2 sends in clear
    assert config.get("smtpd.smtp.tls_min_version") == "TLSv1.2"


def test_local_networks_default_to_loopback_only() -> None:
    config = parse(default_toml())
    assert config.get("network.local_networks") == ["127.0.0.0/8", "::1/128"]


def test_default_file_documents_every_key() -> None:
    text = default_toml()
    for spec in SECTIONS:
        assert f"[{spec.path}]" in text
        for key in spec.keys:
            assert f"\n{key.name} = " in text
    for coll in COLLECTIONS:
        assert coll.doc in text


def test_first_boot_seeds_hostname_and_domain() -> None:
    config = parse(default_toml(hostname="mx", domain="corp.example"))
    assert config.fqdn == "mx.corp.example"
    assert config.local_domains == ["corp.example"]


def test_empty_file_means_all_defaults() -> None:
    config = parse("")
    assert config.get("system.domain") == "example.com"


def test_bad_value_names_file_line_key_value_and_what_is_allowed() -> None:
    text = "[system]\nhostname = 'mail'\n\n[smtpd.smtp]\ninstances = -3\n"
    with pytest.raises(ConfigError) as e:
        parse(text, "/data/appliance.toml")
    err = e.value
    assert err.file == "/data/appliance.toml"
    assert err.line == 5
    assert err.key == "smtpd.smtp.instances"
    assert err.value == -3
    assert "from 1 to 10000" in str(err)
    assert str(err).startswith("/data/appliance.toml:5: smtpd.smtp.instances = -3:")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[smtpd.smtp]\nport = 'twenty-five'\n", "smtpd.smtp.port", "an integer"),
        ("[smtpd.smtp]\nenabled = 'yes'\n", "smtpd.smtp.enabled", "true or false"),
        ("[smtpd.smtp]\ntls_min_version = 'SSLv3'\n", "smtpd.smtp.tls_min_version", "one of"),
        ("[system]\ndomain = 'not a domain'\n", "system.domain", "domain"),
        ("[network]\nlocal_networks = ['10.0.0.0/33']\n", "network.local_networks", "CIDR"),
        ("[smtpd]\nmax_size = 5\n", "smtpd.max_size", "unknown key"),
        ("[users.Alice]\npassword = ''\n", "users.Alice", "bad name"),
        ("[users.alice]\npassword = 'plaintext'\n", "users.alice.password", "hash"),
    ],
)
def test_bad_values_are_refused(text: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text)
    assert e.value.key == key
    assert fragment in str(e.value)


def test_unknown_section_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown section"):
        parse("[smptd]\ntimeout = 5\n")


def test_unknown_sub_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown table"):
        parse("[smtpd.smtpx]\nport = 26\n")


def test_broken_toml_reports_its_line(tmp_path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text("[system]\nhostname = 'mail'\ndomain = \n")
    with pytest.raises(ConfigError) as e:
        load(path)
    assert e.value.line == 3
    assert "not valid TOML" in str(e.value)


def test_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.toml")


def test_extra_domains_are_local_domains() -> None:
    config = parse('[system]\ndomain = "a.example"\n[domains."b.example"]\n')
    assert config.local_domains == ["a.example", "b.example"]


# -- control characters (issue 18: a greeting of "hi\r\n250 evil" was accepted) ----------

@pytest.mark.parametrize(("text", "key"), [
    ('[smtpd]\ngreeting = "hi\\r\\n250 evil"\n', "smtpd.greeting"),
    ('[smtpd]\ngreeting = "hi\\n250 evil"\n', "smtpd.greeting"),
    ('[smtpd]\ngreeting = "a\\u0000b"\n', "smtpd.greeting"),
    ('[smtpd]\ngreeting = "bell\\u0007"\n', "smtpd.greeting"),
    ('[smtpd]\ngreeting = "c1\\u0085"\n', "smtpd.greeting"),
    ('[webmail]\ntitle = "Mail\\tbox"\n', "webmail.title"),
    ('[smtpd.dnsbl]\nzones = ["zen.spamhaus.org:Blocked\\r\\n250 ok"]\n', "smtpd.dnsbl.zones"),
    ('[users.alice]\nfull_name = "Alice\\r\\nBcc: x"\n', "users.alice.full_name"),
    ('[queue]\nbounce_text = "line one\\r\\nline two"\n', "queue.bounce_text"),
    ('[smtpd.disclaimer]\ntext = "a\\u001b[31m"\n', "smtpd.disclaimer.text"),
])
def test_control_characters_in_text_settings_are_refused(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert err.value.key == key
    assert "control character" in err.value.reason


@pytest.mark.parametrize(("text", "key"), [
    ('[delivery]\nsmarthost_password = "hunter2-secret\\r"\n', "delivery.smarthost_password"),
    ('[fetchmail]\npassword = "hunter2-secret\\u0007"\n', "fetchmail.password"),
    ('[fetchmail]\npassword = 7\n', "fetchmail.password"),
    ('[users.alice]\npassword = "{BLF-CRYPT}hunter2-secret\\n"\n', "users.alice.password"),
])
def test_an_error_about_a_secret_never_shows_its_value(text: str, key: str) -> None:
    # the error goes to docker logs, boot-state.json, `appliance status`, the healthcheck
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert err.value.key == key
    assert "hunter2" not in str(err.value) and err.value.value is None
    assert f"{key}:" in str(err.value)  # named, as `key = value:` is for the others


def test_the_secret_keys_are_the_passwords() -> None:
    secret = {f"{s.path}.{k.name}" for s in (*SECTIONS, *COLLECTIONS) for k in s.keys
              if k.secret}
    assert secret == {"delivery.smarthost_password", "fetchmail.password", "users.password",
                      "users.app_passwords"}


def test_config_show_hides_exactly_the_secret_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from appliance import paths
    from appliance.commands import table

    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    paths.CONFIG.write_text('[delivery]\nsmarthost_password = "hunter2"\n'
                            '[fetchmail]\npassword = "hunter3"\n')
    assert table.main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter" not in out and 'smarthost_password = "(set)"' in out
    assert 'password_strength = "strong"' in out


def test_multi_line_texts_may_hold_line_feeds() -> None:
    config = parse('[queue]\nbounce_text = "Sorry.\\nYour mail could not be delivered."\n'
                   '[smtpd.disclaimer]\ntext = "Confidential.\\nSecond line."\n'
                   '[domains."example.org"]\ndisclaimer = "Shop.\\nLine 2"\n')
    assert config.data["queue"]["bounce_text"].count("\n") == 1
    assert config.data["domains"]["example.org"]["disclaimer"] == "Shop.\nLine 2"
    assert parse('[smtpd]\ngreeting = "Welcome, ünïcode is fine"\n')


def test_errors_that_are_not_about_the_file_do_not_name_it() -> None:
    assert str(ConfigError("no terminal to ask for a password: use --password-stdin")) == \
        "no terminal to ask for a password: use --password-stdin"
    assert str(ConfigError("bad", key="users.x")) == "appliance.toml: users.x: bad"
