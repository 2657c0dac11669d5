"""E-mail retrieval (SME fetchmail): the run-control file and the office-hours schedule."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from appliance.commands.scheduler import JOBS, jobs
from appliance.config import ConfigError, parse
from appliance.services.fetchmail import fetchmailrc
from appliance.services.fetchmail import poll as fetchmail

BASE = """
[system]
domain = "corp.example"
[domains."other.example"]
"""
MULTIDROP = BASE + """
[fetchmail]
enabled = true
method = "multidrop"
secondary_mail_server = "pop.isp.example"
account = "corp"
password = 'pa"ss\\word'
sort_header = "Delivered-To"
"""
ETRN = BASE + """
[fetchmail]
enabled = true
method = "etrn"
secondary_mail_server = "mx2.isp.example:2525"
freq_office = "every5min"
freq_outside = "never"
freq_weekend = "every2hrs"
"""
MONDAY = datetime(2026, 11, 16)


def poll_lines(toml: str) -> list[str]:
    return [ln.strip() for ln in fetchmailrc(parse(toml)).splitlines()
            if ln and not ln.startswith(("#", "set"))]


def test_multidrop_sorts_by_the_header_for_every_local_domain_through_port_25() -> None:
    lines = poll_lines(MULTIDROP)
    assert lines[0] == 'poll "pop.isp.example" proto pop3 port 110 timeout 60'
    assert 'envelope "Delivered-To"' in lines
    assert "localdomains corp.example other.example" in lines
    # fetchmail's lexer takes hex escapes exactly; \" it gets wrong
    assert 'user "corp" there with password "pa\\x22ss\\x5cword" is * here' in lines
    assert "smtphost 127.0.0.1/25 smtpaddress corp.example" in lines
    assert any(ln.startswith("sslcertck sslcertfile") for ln in lines)  # TLS required


def test_multidrop_without_port_25_hands_off_to_postfix_and_tls_choices() -> None:
    lines = poll_lines(MULTIDROP + 'tls = "none"\n[smtpd.smtp]\nenabled = false\n')
    assert "smtphost 127.0.0.1/10025 smtpaddress corp.example" in lines
    assert "sslproto '' no sslcertck" in lines
    implicit = poll_lines(MULTIDROP + 'tls = "implicit"\n')
    assert implicit[0].startswith('poll "pop.isp.example" proto pop3 port 995')
    assert any(ln.startswith("ssl sslcertck") for ln in implicit)


def test_etrn_asks_for_every_local_domain() -> None:
    assert poll_lines(ETRN) == ['poll "mx2.isp.example" proto etrn port 2525 timeout 60',
                                "fetchdomains corp.example,other.example"]


def test_standard_or_disabled_retrieves_nothing() -> None:
    assert poll_lines(BASE) == []
    assert poll_lines(ETRN.replace("enabled = true", "enabled = false")) == []
    assert fetchmail.interval(parse(BASE), MONDAY) is None


@pytest.mark.parametrize("when, expected", [
    (MONDAY.replace(hour=8), "office"),
    (MONDAY.replace(hour=17, minute=59), "office"),
    (MONDAY.replace(hour=18), "outside"),
    (MONDAY.replace(hour=7, minute=59), "outside"),
    (datetime(2026, 11, 21, 12), "weekend"),  # Saturday
    (datetime(2026, 11, 22, 9), "weekend"),  # Sunday
])
def test_office_hours_are_weekdays_8_to_18(when: datetime, expected: str) -> None:
    assert fetchmail.period(when) == expected


def test_each_period_has_its_own_frequency_and_the_scheduler_follows_it(tmp_path: Path
                                                                         ) -> None:
    config = parse(ETRN)
    assert fetchmail.interval(config, MONDAY.replace(hour=10)) == 300
    assert fetchmail.interval(config, MONDAY.replace(hour=20)) is None  # never
    assert fetchmail.interval(config, datetime(2026, 11, 21, 10)) == 7200
    toml = tmp_path / "appliance.toml"
    toml.write_text(ETRN)
    office = {j.name: j for j in jobs(MONDAY.replace(hour=10).timestamp(), toml)}
    assert office["fetchmail"].every_s == 300 and office["fetchmail"].argv == ("fetchmail",)
    assert "fetchmail" not in {j.name for j in jobs(MONDAY.replace(hour=20).timestamp(), toml)}
    toml.write_text("not = [toml")  # a broken file: the other jobs still run
    assert {j.name for j in jobs(MONDAY.timestamp(), toml)} == {j.name for j in JOBS}


def test_a_method_without_its_server_or_account_is_refused() -> None:
    with pytest.raises(ConfigError, match="secondary_mail_server"):
        parse(BASE + '[fetchmail]\nenabled = true\nmethod = "etrn"\n')
    with pytest.raises(ConfigError, match="account"):
        parse(BASE + '[fetchmail]\nenabled = true\nmethod = "multidrop"\n'
                     'secondary_mail_server = "pop.isp.example"\n')
    with pytest.raises(ConfigError, match="freq_office"):
        parse(ETRN.replace("every5min", "every3min"))
