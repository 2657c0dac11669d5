"""The plugins' own rules (appliance.config.plugin_rules) are the config check's: a bad
value is refused by parse() with the file, line and key while its plugin runs, a plugin
that is off may hold it (as before: only a loaded plugin refused it), and the plugin,
given the checked values, precompiles them as before."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from appliance.config import ConfigError, parse
from appliance.config.default import default_toml
from appliance.config.edit import set_value
from appliance.config.load import save
from appliance.config.plugin_rules import archive_address, parse_mask, parse_zones
from appliance.services.smtpd import settings as smtpd_settings
from appliance.smtpd.plugins import BasePlugin, Context, PluginError, load

FILE = "/data/appliance.toml"

# (plugin, its section's lines with one bad value, the key named, a fragment of the reason)
BAD = [
    ("dmarc", 'report_sender = "postmaster"', "report_sender", "not an address"),
    ("uribl", 'zones = ["multi.surbl.example:8-x"]', "zones", "bit mask '8-x'"),
    ("uribl", 'zones = ["multi.surbl.example:999"]', "zones", "numbers 1-255"),
    ("bcc", 'user = "two words"', "user", "not a user name or an address"),
    ("bcc", 'user = "a@b@c"', "user", "not a user name or an address"),
    ("bcc", 'user = "@example.com"', "user", "not a user name or an address"),
    ("bcc", 'user = "maillog"', "user", "maillog@example.com does not exist here"),
    ("bcc", 'user = "Nobody@Example.COM"', "user", "does not exist here"),
    ("greylisting", "black_timeout = 3000\ngrey_timeout = 600", "grey_timeout",
     "must be longer than black_timeout"),
    ("greylisting", "black_timeout = 3000\ngrey_timeout = 3000", "grey_timeout",
     "must be longer than black_timeout"),
]


def toml(plugin: str, lines: str, enabled: bool | None) -> str:
    switch = "" if enabled is None else f"enabled = {str(enabled).lower()}\n"
    return f"[system]\ndomain = \"example.com\"\n\n[smtpd.{plugin}]\n{switch}{lines}\n"


def line_of(text: str, key: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1)
                if line.startswith(f"{key} ="))


def plugin_of(name: str, text: str, tmp_path: Path) -> BasePlugin:
    """The plugin as a daemon loads it from this appliance.toml."""
    settings = smtpd_settings(parse(text))
    return load(name, settings, Context(resolver=None,  # type: ignore[arg-type]
                                        state_dir=tmp_path, hostname=settings.hostname))


@pytest.mark.parametrize(("plugin", "lines", "key", "reason"), BAD)
def test_a_bad_value_is_refused_with_file_line_and_key_while_the_plugin_runs(
        plugin: str, lines: str, key: str, reason: str) -> None:
    text = toml(plugin, lines, enabled=True)
    with pytest.raises(ConfigError) as e:
        parse(text, FILE)
    assert e.value.key == f"smtpd.{plugin}.{key}"
    assert e.value.file == FILE
    assert e.value.line == line_of(text, key)
    assert reason in str(e.value)
    assert str(e.value).startswith(f"{FILE}:{line_of(text, key)}: smtpd.{plugin}.{key} = ")


@pytest.mark.parametrize(("plugin", "lines", "key", "reason"), BAD)
def test_a_plugin_that_is_off_may_hold_the_value(plugin: str, lines: str, key: str,
                                                 reason: str) -> None:
    config = parse(toml(plugin, lines, enabled=False))
    assert config.get(f"smtpd.{plugin}.enabled") is False


@pytest.mark.parametrize(("plugin", "lines", "key", "reason"), BAD)
def test_the_daemons_loader_refuses_the_same_value(plugin: str, lines: str, key: str,
                                                   reason: str, tmp_path: Path) -> None:
    """A settings file written by hand meets the same rule when the plugin loads."""
    settings = smtpd_settings(parse(toml(plugin, lines, enabled=False)))
    section = dataclasses.replace(getattr(settings.plugin_settings, plugin), enabled=True)
    on = settings.replace(plugin_settings=dataclasses.replace(settings.plugin_settings,
                                                              **{plugin: section}))
    with pytest.raises(PluginError, match=f"{plugin}: {key} = .*{reason[:20]}"):
        load(plugin, on, Context(resolver=None,  # type: ignore[arg-type]
                                 state_dir=tmp_path, hostname=on.hostname))


def test_headers_always_runs_so_its_rule_always_holds() -> None:
    """headers has no `enabled` key: every daemon's chain loads it, so it refuses a
    header name with a colon or a non-ASCII letter whatever else is set."""
    for bad in ("X-Bad:", "Sübject"):
        text = f'[smtpd.headers]\nrequired = ["From", "{bad}"]\n'
        with pytest.raises(ConfigError) as e:
            parse(text, FILE)
        assert e.value.key == "smtpd.headers.required"
        assert e.value.line == 2
        assert f"{bad!r} is not a header name" in str(e.value)


def test_a_bad_dns_zone_is_the_schemas_and_refused_even_when_off() -> None:
    """That a list entry starts with a DNS zone was always the schema's check of the
    `zones` keys (stricter than the plugins' was), whatever `enabled` says."""
    for plugin in ("dnsbl", "rhsbl", "uribl"):
        for enabled in (True, False):
            with pytest.raises(ConfigError) as e:
                parse(toml(plugin, 'zones = ["not a zone"]', enabled=enabled))
            assert e.value.key == f"smtpd.{plugin}.zones"
            assert "does not start with a DNS zone" in str(e.value)


def test_an_archive_user_that_exists_or_is_elsewhere_is_taken() -> None:
    base = '[system]\ndomain = "example.com"\n[domains."delegated.example"]\n' \
           'mail_server = "192.0.2.25"\n[domains."other.example"]\n[users.maillog]\n' \
           '[groups.archive]\nmembers = ["maillog"]\n' \
           '[pseudonyms.info]\naccount = "maillog"\n' \
           '[pseudonyms."arch@other.example"]\naccount = "maillog"\n'
    for user in ("maillog", "MailLog@Example.com", "archive@elsewhere.example",
                 "anyone@delegated.example", "postmaster",  # postmaster@ reaches the admin
                 "archive", "info", "arch@other.example"):  # a group's, a pseudonym's
        parse(base + f'[smtpd.bcc]\nenabled = true\nuser = "{user}"\n')
    with pytest.raises(ConfigError, match="nobody@other.example does not exist here"):
        parse(base + '[smtpd.bcc]\nenabled = true\nuser = "nobody@other.example"\n')
    # the primary domain's mail goes to another server: any address there is taken
    delegated = '[system]\ndomain = "example.com"\n[delivery]\n' \
                'delegate_mail_server = "192.0.2.25"\n'
    parse(delegated + '[smtpd.bcc]\nenabled = true\nuser = "maillog"\n')


def test_a_repeated_uribl_zone_keeps_its_first_entry_as_the_plugin_does() -> None:
    parse(toml("uribl", 'zones = ["multi.surbl.example:8", "multi.surbl.example:x"]',
               enabled=True))


def test_config_set_refuses_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(default_toml())
    config = parse(path.read_text(), path)
    set_value(config, "smtpd.greylisting.enabled", ["true"])
    set_value(config, "smtpd.greylisting.grey_timeout", ["600"])
    with pytest.raises(ConfigError) as e:
        save(config.document, path)
    assert e.value.key == "smtpd.greylisting.grey_timeout"
    assert e.value.line is not None
    assert path.read_text() == default_toml()


@pytest.mark.parametrize(("plugin", "lines", "expect"), [
    ("headers", 'required = ["From", "Date", "X-Mailer"]',
     {"required": ("From", "Date", "X-Mailer")}),
    ("dmarc", 'report_sender = "reports@example.com"',
     {"report_sender": "reports@example.com"}),
    ("dmarc", 'report_sender = ""', {"report_sender": "postmaster@example.com"}),
    ("uribl", 'zones = ["Multi.SURBL.example:8-16-64-128", "black.uribl.example", '
     '"multi.surbl.example:2"]',
     {"zones": [("multi.surbl.example", 8 | 16 | 64 | 128), ("black.uribl.example", 0)]}),
    ("bcc", 'user = "archive@elsewhere.example"', {"address": "archive@elsewhere.example"}),
    ("greylisting", "black_timeout = 300\ngrey_timeout = 3600",
     {"black_timeout": 300, "grey_timeout": 3600}),
])
def test_the_plugin_given_checked_values_precompiles_them_as_before(
        plugin: str, lines: str, expect: dict[str, Any], tmp_path: Path) -> None:
    loaded = plugin_of(plugin, toml(plugin, lines, enabled=True if plugin != "headers"
                                    else None), tmp_path)
    assert {k: getattr(loaded, k) for k in expect} == expect


def test_the_parsers() -> None:
    assert parse_zones([" a.example : msg: more ", "A.example.", "b.example"]) == [
        ("a.example", "msg: more"), ("b.example", "")]
    assert parse_mask("") == 0
    assert parse_mask("8-16, 64") == 88
    for bad in ("0", "256", "8-x"):
        with pytest.raises(ValueError):
            parse_mask(bad)
    assert archive_address(" maillog ", "example.com") == "maillog@example.com"
    assert archive_address("a@other.example", "example.com") == "a@other.example"
    for bad in ("", "two words", "a@b@c", "@example.com", "a@", "a@."):
        with pytest.raises(ValueError):
            archive_address(bad, "example.com")
