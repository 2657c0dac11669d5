"""Sub-addressing: user+ext@ and user-ext@ by default, split alike by our recipient
check, Postfix and Dovecot (one key: [smtpd.check_goodrcptto] extension_separator)."""

from __future__ import annotations

import pytest

from appliance.accounts import recipient_delimiters
from appliance.config import ConfigError, parse
from appliance.services.registry import render_all
from appliance.smtpd.address import mailbox_of, qualify_postmaster

KNOWN = frozenset({"alice@example.com", "mary@example.com", "@catchall.example"})


@pytest.mark.parametrize(("local", "separators", "mailbox"), [
    ("alice+tag", "+-", "alice@example.com"),
    ("alice-tag", "+-", "alice@example.com"),
    ("mary-ann+news", "+-", "mary@example.com"),  # the first delimiter, as Postfix splits
    ("alice+tag", "-", None),
    ("alice-tag", "+", None),
    ("alice+tag", "", None),
    ("+tag", "+-", None),  # no user before the extension
    ("alice", "+-", "alice@example.com"),
])
def test_the_extension_starts_at_the_first_delimiter(local: str, separators: str,
                                                     mailbox: str | None) -> None:
    assert mailbox_of(local, "example.com", KNOWN, separators) == mailbox


def test_an_empty_user_part_never_reaches_the_catch_all() -> None:
    assert mailbox_of("-x", "catchall.example", KNOWN, "+-") is None


def test_only_a_bare_postmaster_is_qualified() -> None:
    assert qualify_postmaster("PostMaster", "example.com") == "postmaster@example.com"
    assert qualify_postmaster("alice", "example.com") == "alice"
    assert qualify_postmaster("postmaster@other.example", "example.com") == \
        "postmaster@other.example"


BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'


@pytest.mark.parametrize("value", ["", "-", "+", "+-", "-+", "+-="])
def test_old_single_delimiters_and_sets_are_valid(value: str) -> None:
    config = parse(BASE + f'[smtpd.check_goodrcptto]\nextension_separator = "{value}"\n')
    assert config.data["smtpd"]["check_goodrcptto"]["extension_separator"] == value


@pytest.mark.parametrize("value", ["++", "x", "+ ", "@"])
def test_other_delimiters_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="extension_separator"):
        parse(BASE + f'[smtpd.check_goodrcptto]\nextension_separator = "{value}"\n')


def test_postfix_and_dovecot_split_with_the_same_characters_by_default() -> None:
    files = {f.path: f.text for fs in render_all(parse(BASE)).values() for f in fs}
    assert "\nrecipient_delimiter = +-\n" in files["/etc/postfix/main.cf"]
    dovecot = next(text for path, text in files.items() if path.endswith("dovecot.conf"))
    assert "\nrecipient_delimiter = +-\n" in dovecot
    assert "\nlmtp_save_to_detail_mailbox = no\n" in dovecot  # every extension: INBOX


def test_local_delivery_keeps_long_lines_and_remote_delivery_folds_them() -> None:
    main = {f.path: f.text for fs in render_all(parse(BASE)).values()
            for f in fs}["/etc/postfix/main.cf"]
    assert "\nlmtp_line_length_limit = 0\n" in main
    assert "\nsmtp_line_length_limit =" not in main  # Postfix's 998 for mail sent on


def _rendered(toml: str) -> dict[str, str]:
    return {f.path: f.text for fs in render_all(parse(toml)).values() for f in fs}


def _delimiters(files: dict[str, str]) -> tuple[str, str, str]:
    """(Postfix's, Dovecot's, our daemons') delimiters."""
    import json
    import re

    dovecot = next(text for path, text in files.items() if path.endswith("dovecot.conf"))
    smtpd = json.loads(files["/etc/appliance/smtpd.json"])
    postfix = re.search(r"\nrecipient_delimiter = ?(.*)\n", files["/etc/postfix/main.cf"])
    dove = re.search(r"\nrecipient_delimiter = ?(.*)\n", dovecot)
    assert postfix and dove
    return (postfix[1], dove[1],
            smtpd["plugin_settings"]["check_goodrcptto"]["extension_separator"])


@pytest.mark.parametrize(("extra", "configured", "in_effect"), [
    ("", "+-", "+-"),
    ("[users.mary-ann]\n", "+-", "+"),  # mary-ann+news@ is hers, never mary@'s
    ("[users.alice]\n[groups.front-desk]\nmembers = [\"alice\"]\n", "+-", "+"),
    ("[users.alice]\n[pseudonyms.\"a-b@example.com\"]\naccount = \"alice\"\n", "+-=", "+="),
    ("[users.mary-ann]\n", "-", ""),
])
def test_a_delimiter_in_one_of_our_names_is_no_delimiter(extra: str, configured: str,
                                                         in_effect: str) -> None:
    toml = BASE + extra + f'[smtpd.check_goodrcptto]\nextension_separator = "{configured}"\n'
    assert recipient_delimiters(parse(toml)) == in_effect
    assert _delimiters(_rendered(toml)) == (in_effect,) * 3

