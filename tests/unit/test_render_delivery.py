"""Accounts and delivery settings as Postfix and Dovecot see them (SME e-mail settings)."""

from __future__ import annotations

import json

import pytest

from appliance.accounts import addresses, group_recipients
from appliance.config import ConfigError, parse
from appliance.services.registry import render_all

BASE = """
[system]
hostname = "mx"
domain = "corp.example"
[domains."other.example"]
[users.alice]
[users.bob]
[users.carol]
[users.dave]
"""


def files(extra: str = "") -> dict[str, str]:
    return {f.path: f.text for fs in render_all(parse(BASE + extra)).values() for f in fs}


def alias_map(extra: str = "") -> dict[str, str]:
    text = files(extra)["/etc/postfix/appliance/aliases"]
    return dict(line.split(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_group_mail_skips_excluded_users_and_members_of_excluded_groups() -> None:
    config = parse(BASE + """
[groups.sales]
members = ["alice", "bob", "carol", "dave"]
exclude_users = ["alice"]
exclude_groups = ["managers"]
[groups.managers]
members = ["bob"]
""")
    assert group_recipients(config, "sales") == ["carol", "dave"]
    assert alias_map("""
[groups.sales]
members = ["alice", "bob", "carol"]
exclude_users = ["alice"]
""")["sales@other.example"] == "bob@corp.example, carol@corp.example"


def test_exclusions_must_name_existing_accounts() -> None:
    with pytest.raises(ConfigError, match="exclude_groups"):
        parse(BASE + '[groups.sales]\nmembers = ["alice"]\nexclude_groups = ["nobody"]\n')


def test_everyone_reaches_users_who_did_not_opt_out() -> None:
    assert alias_map()["everyone@corp.example"] == (
        "alice@corp.example, bob@corp.example, carol@corp.example, dave@corp.example")
    config = parse(BASE.replace("[users.dave]", "[users.dave]\neveryone_email = false"))
    assert "dave@corp.example" not in addresses(config)["everyone@corp.example"]


def test_postmaster_and_abuse_reach_the_admin() -> None:
    assert alias_map()["postmaster@corp.example"] == "alice@corp.example"  # first by name
    config = BASE.replace('domain = "corp.example"', 'domain = "corp.example"\nadmin = "bob"')
    aliases = {f.path: f.text for fs in render_all(parse(config)).values() for f in fs}
    assert "abuse@other.example bob@corp.example" in aliases["/etc/postfix/appliance/aliases"]
    with pytest.raises(ConfigError, match="admin"):
        parse(BASE.replace('domain = "corp.example"', 'domain = "corp.example"\nadmin = "x"'))


def test_forwarding_with_and_without_a_copy() -> None:
    assert "alice@corp.example" not in alias_map()  # its own mailbox, nothing to alias
    text = BASE.replace("[users.alice]", '[users.alice]\nforward = ["a@remote.test"]')
    text = text.replace("[users.bob]", '[users.bob]\nforward = ["b@remote.test"]\n'
                        "keep_copy = true")
    aliases = {f.path: f.text for fs in render_all(parse(text)).values() for f in fs}
    lines = aliases["/etc/postfix/appliance/aliases"].splitlines()
    assert "alice@corp.example a@remote.test" in lines
    assert "alice@other.example alice@corp.example" in lines
    assert "bob@corp.example b@remote.test, bob@corp.example" in lines


def test_unknown_user_catch_all_keeps_real_users_first() -> None:
    aliases = alias_map('[delivery]\nunknown_user = "carol"\n')
    assert aliases["@corp.example"] == "carol@corp.example"
    assert aliases["alice@corp.example"] == "alice@corp.example"
    text = files('[delivery]\nunknown_user = "carol"\n')["/etc/postfix/appliance/aliases"]
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body[-1].startswith("@")  # catch-alls last, for readers of the file


def test_returntosender_has_no_catch_all() -> None:
    assert not any(a.startswith("@") for a in alias_map())


def test_smarthost_with_auth_and_required_tls() -> None:
    out = files("""
[delivery]
smarthost = "relay.isp.test:587"
smarthost_user = "office"
smarthost_password = "s3cret"
smarthost_tls = "encrypt"
helo_host = "mail.corp.example"
""")
    main = out["/etc/postfix/main.cf"]
    assert "relayhost = [relay.isp.test]:587" in main
    assert "smtp_sasl_auth_enable = yes" in main
    assert "smtp_helo_name = mail.corp.example" in main
    assert "[relay.isp.test]:587 office:s3cret" in out["/etc/postfix/appliance/smarthost_auth"]
    assert "[relay.isp.test]:587 encrypt" in out["/etc/postfix/appliance/tls_policy"]


def test_smarthost_credentials_are_root_only() -> None:
    modes = {f.path: f.mode for fs in render_all(parse(BASE)).values() for f in fs}
    assert modes["/etc/postfix/appliance/smarthost_auth"] == 0o600


def test_no_smarthost_delivers_by_mx() -> None:
    main = files()["/etc/postfix/main.cf"]
    assert "relayhost = \n" in main
    assert "smtp_sasl_auth_enable = no" in main
    assert "smtp_helo_name = $myhostname" in main


def test_delegate_mail_server_takes_every_domain_without_its_own() -> None:
    out = files("""
[delivery]
delegate_mail_server = "10.0.0.5"
[domains."third.example"]
mail_server = "[192.0.2.7]:2525"
""")
    transport = out["/etc/postfix/appliance/transport"].splitlines()
    assert "corp.example smtp:[10.0.0.5]:25" in transport
    assert "other.example smtp:[10.0.0.5]:25" in transport
    assert "third.example smtp:[192.0.2.7]:2525" in transport
    main = out["/etc/postfix/main.cf"]
    assert "virtual_mailbox_domains = \n" in main
    assert "relay_domains = corp.example, other.example, third.example" in main


@pytest.mark.parametrize(("value", "expected"), [
    ("postmaster", "2bounce_notice_recipient = alice@corp.example"),
    ("bob", "2bounce_notice_recipient = bob@corp.example"),
    ("devnull", "notify_classes = resource, software\n"),
])
def test_double_bounces_go_where_double_bounce_to_says(value: str, expected: str) -> None:
    assert expected in files(f'[queue]\ndouble_bounce_to = "{value}"\n')["/etc/postfix/main.cf"]


def test_quota_reaches_dovecot_users_file() -> None:
    out = files().get("/etc/dovecot/appliance/users")
    assert "quota" not in out
    text = BASE.replace("[users.bob]", "[users.bob]\nquota_mb = 250")
    out = {f.path: f.text for fs in render_all(parse(text)).values() for f in fs}
    users = out["/etc/dovecot/appliance/users"]
    # the delivery that crosses the limit may go 10% over it (Dovecot 2.3's default)
    assert ("bob:::::::nologin userdb_quota_storage_size=250M "
            f"userdb_quota_storage_grace={25 * 2**20}B\n") in users
    conf = out["/etc/dovecot/dovecot.conf"]
    assert 'quota "User quota" {\n  driver = maildir\n}' in conf  # Maildir++, as before
    assert "mail_plugins {\n  quota = yes\n}" in conf
    assert "protocol imap {\n  mail_plugins {\n    imap_quota = yes\n  }" in conf


def test_duplicate_suppression_runs_first_for_every_mailbox_within_its_window() -> None:
    duplicates = ("sieve_script duplicates {\n  type = before\n"
                  "  path = /etc/dovecot/sieve/duplicates.sieve\n  precedence = 1\n}")
    assert duplicates in files()["/etc/dovecot/dovecot.conf"]  # every user's
    sieve = files()["/etc/dovecot/sieve/duplicates.sieve"]
    assert 'require ["duplicate", "variables"];' in sieve
    assert ('if duplicate :uniqueid "${id}|${date}|${from}|${subject}" :seconds 86400 {'
            in sieve)
    assert "sieve_duplicate_max_period = 7d" in files()["/etc/dovecot/dovecot.conf"]
    for header in ("Message-ID", "Date", "From", "Subject"):
        assert f'header :matches "{header}"' in sieve
    assert "discard;\n    stop;" in sieve
    # ahead of junkmail sorting, a storage the users file adds for the users who sort
    junkmail = ("userdb_sieve_script+=junkmail userdb_sieve_script/junkmail/sieve_script_type"
                "=before userdb_sieve_script/junkmail/sieve_script_path="
                "/etc/dovecot/sieve/junkmail.sieve "
                "userdb_sieve_script/junkmail/sieve_script_precedence=2")
    sorted_spam = files("[spamassassin]\nsort_spam = true\n")["/etc/dovecot/appliance/users"]
    assert sorted_spam.splitlines()[0] == f"alice:::::::nologin {junkmail}"
    # 0 keeps every copy; junkmail stays
    off = files("[delivery]\nduplicate_window_hours = 0\n[spamassassin]\nsort_spam = true\n")
    assert "sieve_script duplicates" not in off["/etc/dovecot/dovecot.conf"]
    assert junkmail in off["/etc/dovecot/appliance/users"]
    assert ":seconds 3600 " in files("[delivery]\nduplicate_window_hours = 1\n")[
        "/etc/dovecot/sieve/duplicates.sieve"]


def test_internal_groups_are_hidden_from_the_internet_too() -> None:
    text = BASE + ('[groups.staff]\nmembers = ["alice"]\n'
                   '[groups.press]\nmembers = ["alice"]\nvisible = "public"\n')
    out = {f.path: f.text for fs in render_all(parse(text)).values() for f in fs}
    internal = json.loads(out["/etc/appliance/smtpd.json"])["internal_addresses"]
    assert internal["staff@corp.example"] == "list"  # groups are internal by default
    assert internal["everyone@corp.example"] == "list"
    assert "press@corp.example" not in internal


def test_a_group_with_no_one_left_goes_to_the_admin_for_postfix_and_smtpd_alike() -> None:
    text = BASE + '[groups.ghosts]\nmembers = ["bob"]\nexclude_users = ["bob"]\n'
    config = parse(text)
    assert addresses(config)["ghosts@corp.example"] == ["alice@corp.example"]
    out = {f.path: f.text for fs in render_all(config).values() for f in fs}
    assert "ghosts@corp.example alice@corp.example" in out["/etc/postfix/appliance/aliases"]
    nobody = parse('[system]\ndomain = "corp.example"\n[groups.empty]\n')
    assert "empty@corp.example" not in addresses(nobody)  # no one to deliver to: unknown


def test_bounces_keep_postfix_text_until_something_is_customised() -> None:
    rendered = files()
    assert "bounce_template_file = \n" in rendered["/etc/postfix/main.cf"]
    assert "failure_template" not in rendered["/etc/postfix/appliance/bounce_templates"]


def test_custom_bounce_sender_subject_and_text_make_a_failure_template() -> None:
    rendered = files('[queue]\nbounce_from = "postmaster@corp.example"\n'
                     'bounce_subject = "Returned: $subject"\n'
                     'bounce_text = """Sorry.\nCall us on 555 for help, costs $0."""\n')
    main_cf = rendered["/etc/postfix/main.cf"]
    assert "bounce_template_file = /etc/postfix/appliance/bounce_templates\n" in main_cf
    template = rendered["/etc/postfix/appliance/bounce_templates"]
    assert "failure_template = <<EOF\nCharset: us-ascii\n" in template
    assert "From: postmaster@corp.example (Mail Delivery System)\n" in template
    # $ is a literal here, not a Postfix parameter
    assert "Subject: Returned: $$subject\n" in template
    assert "\n\nSorry.\nCall us on 555 for help, costs $$0.\nEOF\n" in template


def test_only_the_subject_changed_keeps_an_explanation_and_utf8_is_declared() -> None:
    template = files('[queue]\nbounce_subject = "Non remis à son destinataire"\n'
                     )["/etc/postfix/appliance/bounce_templates"]
    assert "Charset: utf-8\nFrom: MAILER-DAEMON (Mail Delivery System)\n" in template
    assert "This is the mail system at host $myhostname." in template


@pytest.mark.parametrize("key, value", [
    ("bounce_text", "a\nEOF\nb"),
    ("bounce_subject", "two\nlines"),
    ("bounce_from", "Mail Daemon"),
    ("bounce_from", "x@not_a_domain"),
])
def test_a_bounce_setting_postfix_would_misread_is_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse(BASE + f"[queue]\n{key} = {json.dumps(value)}\n")


@pytest.mark.parametrize("name, why", [
    ("alice@corp.example", "already an account's own address"),  # would take alice's mail
    ("bob@other.example", "already an account's own address"),
    ("sales@elsewhere.example", "not one of our domains"),
])
def test_a_pseudonym_cannot_take_over_an_account_or_sit_at_a_foreign_domain(
        name: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse(BASE + f'[pseudonyms."{name}"]\naccount = "carol"\n')


def test_smarthost_credentials_cannot_add_lines_to_postfix_maps() -> None:
    with pytest.raises(ConfigError, match="smarthost_password"):
        parse(BASE + '[delivery]\nsmarthost = "relay.example"\nsmarthost_user = "u"\n'
                     'smarthost_password = "x\\n[evil.example]:25 a:b"\n')
    with pytest.raises(ConfigError, match="smarthost_user"):
        parse(BASE + '[delivery]\nsmarthost_user = "a b:c"\n')


def test_status_names_a_data_volume_short_of_the_room_mail_needs() -> None:
    from appliance.status import disk_problem

    cfg = parse('[system]\nhostname = "mail"\ndomain = "example.com"\n'
                       "[smtpd]\nmax_message_size = 10000000\n")
    needed = int(1.5 * (10000000 + 64 * 1024))
    assert disk_problem(needed, cfg) is None
    problem = disk_problem(needed - 1, cfg)
    assert problem and "452 4.3.1" in problem and "data volume has" in problem
