"""SpamAssassin, ClamAV, junkmail sorting and the housekeeping jobs, as rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.commands import scheduler
from appliance.config import ConfigError, parse
from appliance.services.registry import render_all

BASE = """
[system]
hostname = "mx"
domain = "corp.example"
[users.alice]
[users.bob]
sort_spam = "disabled"
[users.carol]
sort_spam = "enabled"
"""


def files(extra: str = "") -> dict[str, str]:
    return {f.path: f.text for fs in render_all(parse(BASE + extra)).values() for f in fs}


def local_cf(extra: str = "") -> list[str]:
    return files(extra)["/etc/spamassassin/local.cf"].splitlines()


def smtpd(extra: str = "") -> dict:
    return json.loads(files(extra)["/etc/appliance/smtpd.json"])["plugin_settings"]


@pytest.mark.parametrize(("sensitivity", "tag"), [("veryhigh", "2"), ("high", "3"),
                                                  ("medium", "5"), ("low", "7"),
                                                  ("verylow", "9")])
def test_sensitivity_table_tags_and_never_rejects(sensitivity: str, tag: str) -> None:
    extra = f'[spamassassin]\nsensitivity = "{sensitivity}"\nreject_level = 6\n'
    assert f"required_score {tag}" in local_cf(extra)
    spam = smtpd(extra)["spamassassin"]
    assert spam["tag_level"] == float(tag) and spam["reject_level"] is None


def test_custom_sensitivity_uses_tag_and_reject_levels() -> None:
    extra = '[spamassassin]\nsensitivity = "custom"\ntag_level = 4\nreject_level = 12\n'
    spam = smtpd(extra)["spamassassin"]
    assert (spam["tag_level"], spam["reject_level"]) == (4.0, 12.0)
    assert "required_score 4" in local_cf(extra)
    no_reject = extra.replace("reject_level = 12", "reject_level = 0")
    assert smtpd(no_reject)["spamassassin"]["reject_level"] is None


def test_trusted_and_internal_networks_are_loopback_and_local_networks_only() -> None:
    # the Docker bridge (172.16.0.0/12 etc.) is private but not ours: never trusted
    lines = local_cf('[network]\nlocal_networks = ["127.0.0.0/8", "192.168.7.0/24", '
                     '"10.1.2.3"]\n')
    nets = "127.0.0.0/8 ::1/128 192.168.7.0/24 10.1.2.3/32"
    assert f"trusted_networks {nets}" in lines
    assert f"internal_networks {nets}" in lines
    assert "trusted_networks 127.0.0.0/8 ::1/128" in local_cf()  # the default


def test_bayes_scores_and_wbl_reach_spamassassin_and_the_pipeline() -> None:
    extra = """[spamassassin]
use_bayes = true
bayes_auto_learn_threshold_spam = 6.5
scores = ["SARE_ADULT2 4.0", "BAYES_99 -1"]
whitelist = ["*@vonage.com"]
blacklist = ["*@*.xyz"]
pyzor_timeout = 15
"""
    cf = local_cf(extra)
    for line in ("use_bayes 1", "bayes_auto_learn 1", "bayes_auto_learn_threshold_spam 6.5",
                 "bayes_auto_learn_threshold_nonspam 0.1", "score SARE_ADULT2 4",
                 "score BAYES_99 -1", "welcomelist_from *@vonage.com",
                 "blocklist_from *@*.xyz", "pyzor_timeout 15",
                 "bayes_path /var/lib/appliance/spamassassin/bayes/bayes"):
        assert line in cf
    plugins = smtpd(extra)
    assert "*@vonage.com" in plugins["whitelists"]["senders"]
    assert "*@*.xyz" in plugins["badmailfrom"]["patterns"]


@pytest.mark.parametrize("bad", ['scores = ["NOT A SCORE"]', 'scores = ["RULE x"]',
                                 'tag_level = "high"', 'sensitivity = "paranoid"',
                                 'subject = "a\\nb"'])
def test_bad_spam_settings_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="spamassassin"):
        parse(BASE + f"[spamassassin]\n{bad}\n")


def test_clamd_limits_are_smes_and_unscannable_archives_alert() -> None:
    conf = files()["/etc/clamav/clamd.conf"].splitlines()
    for line in ("MaxFileSize 15M", "MaxFiles 1500", "MaxRecursion 8", "AlertExceedsMax yes",
                 "HeuristicScanPrecedence no", "StreamMaxLength 25M", "MaxThreads 4",
                 "LocalSocket /run/clamav/clamd.ctl", "LocalSocketGroup clamav",
                 "DatabaseDirectory /var/lib/appliance/clamav"):
        assert line in conf
    conf = files('[clamav]\nmax_file_size = "20M"\nheuristic_scan_precedence = true\n'
                 'max_scanner_size = 30000000\n')["/etc/clamav/clamd.conf"].splitlines()
    assert {"MaxFileSize 20M", "HeuristicScanPrecedence yes", "StreamMaxLength 30M"} <= set(conf)
    with pytest.raises(ConfigError, match="clamav.max_file_size"):
        parse(BASE + '[clamav]\nmax_file_size = "lots"\n')


def test_supervisord_runs_spamd_clamd_and_freshclam_only_when_enabled() -> None:
    conf = files('[spamassassin]\nmax_children = 3\n')["/etc/supervisord.conf"]
    assert "[program:spamd]" in conf and "--max-children=3" in conf
    assert "--allow-tell" in conf and "--socketgroup=qpsmtpd" in conf
    assert "[program:clamd]" in conf and "[program:freshclam]" in conf
    off = files('[spamassassin]\nenabled = false\n[clamav]\nfreshclam = false\n'
                )["/etc/supervisord.conf"]
    assert "[program:spamd]" not in off and "[program:freshclam]" not in off
    assert "[program:clamd]" in off


def test_junkmail_sorting_per_user_over_the_global_switch() -> None:
    def sorting(extra: str) -> dict[str, bool]:
        users = files(extra)["/etc/dovecot/appliance/users"].splitlines()
        return {u.split(":")[0]: "=/etc/dovecot/sieve/junkmail.sieve" in u for u in users}

    assert sorting("") == {"alice": False, "bob": False, "carol": True}
    assert sorting("[spamassassin]\nsort_spam = true\n") == {
        "alice": True, "bob": False, "carol": True}
    assert sorting("[spamassassin]\nenabled = false\nsort_spam = true\n") == {
        "alice": False, "bob": False, "carol": False}
    sieve = files()["/etc/dovecot/sieve/junkmail.sieve"]
    assert 'if header :is "X-Spam-Flag" "YES"' in sieve and 'fileinto "junkmail"' in sieve
    conf = files()["/etc/dovecot/dovecot.conf"]
    for box in ("junkmail", "LearnAsSpam", "LearnAsHam"):
        assert f"mailbox {box} {{\n" in conf


def test_pattern_filter_blocks_executables_and_allows_zip_by_default() -> None:
    patterns = smtpd()["pattern_filter"]["patterns"]
    assert {"*.exe", "*.bat", "*.scr", "*.vbs", "*.js", "*.lnk"} <= set(patterns)
    assert "*.zip" not in patterns


def test_scheduler_learns_and_expires_only_when_asked(tmp_path: Path) -> None:
    toml = tmp_path / "appliance.toml"
    toml.write_text(BASE)
    names = [j.name for j in scheduler.jobs(0, toml)]
    assert "spam-learn" not in names and "junkmail-expire" not in names
    toml.write_text(BASE + "[spamassassin]\nuse_bayes = true\nmessage_retention_days = 60\n")
    jobs = {j.name: j for j in scheduler.jobs(0, toml)}
    assert jobs["spam-learn"].argv == ("spam", "learn")
    assert jobs["junkmail-expire"].argv == ("spam", "expire-junkmail")
    assert jobs["junkmail-expire"].every_s == 86400
    toml.write_text("[broken")
    assert scheduler.jobs(0, toml) == scheduler.JOBS  # a broken file: the fixed jobs only
