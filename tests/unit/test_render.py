"""Rendering is a pure function of the config: compare the generated text."""

from __future__ import annotations

import json

from appliance.config import parse
from appliance.limits import HEADER_ALLOWANCE
from appliance.services.registry import render_all
from appliance.smtpd.auth import hash_password

HASH = hash_password("secret", rounds=4)

CONFIG = parse(f"""
[system]
hostname = "mx"
domain = "corp.example"
[domains."other.example"]
[users.alice]
password = "{HASH}"
full_name = "Alice: Admin"
[users.bob]
[queue]
lifetime = 3600
concurrency_remote = 7
""")


def files() -> dict[str, str]:
    return {f.path: f.text for fs in render_all(CONFIG).values() for f in fs}


def test_postfix_listens_only_on_loopback_handoff_port() -> None:
    main = files()["/etc/postfix/main.cf"]
    master = files()["/etc/postfix/master.cf"]
    assert "inet_interfaces = loopback-only" in main
    assert master.splitlines()[2].startswith("127.0.0.1:10025 inet")
    assert "\nsmtp      inet" not in master  # no public Postfix listener


def test_postfix_never_rewrites_the_headers_our_daemons_judged() -> None:
    """From: bob passed on by a daemon stays bob: Postfix would make it bob@$myorigin
    (local_header_rewrite_clients' default covers 127.0.0.1) after sender_login judged
    it. Only the hand-off listener: mail of local programs comes through pickup."""
    master = files()["/etc/postfix/master.cf"].splitlines()
    start = next(i for i, line in enumerate(master) if line.startswith("127.0.0.1:10025 "))
    options = []
    for line in master[start + 1:]:
        if not line.startswith("  -o "):
            break
        options.append(line.split(None, 1)[1])
    assert "local_header_rewrite_clients=" in options
    assert "local_header_rewrite_clients" not in files()["/etc/postfix/main.cf"]


def test_postfix_queue_lives_on_the_data_volume() -> None:
    assert "queue_directory = /var/lib/appliance/postfix" in files()["/etc/postfix/main.cf"]


def test_postfix_domains_limits_and_lifetime() -> None:
    main = files()["/etc/postfix/main.cf"]
    assert "myhostname = mx.corp.example" in main
    assert "virtual_mailbox_domains = corp.example, other.example" in main
    assert f"message_size_limit = {15000000 + HEADER_ALLOWANCE}" in main
    # 452 4.3.1 below 1.5 x the limit free, in Postfix and in our daemons alike
    minfree = int(1.5 * (15000000 + HEADER_ALLOWANCE))
    assert f"queue_minfree = {minfree}" in main
    smtpd = json.loads(files()["/etc/appliance/smtpd.json"])
    assert smtpd["queue_min_free"] == minfree
    assert smtpd["queue_dir"] == "/var/lib/appliance/postfix"
    assert "maximal_queue_lifetime = 3600s" in main
    assert "smtp       unix  - - n -  7 smtp" in files()["/etc/postfix/master.cf"]


def test_every_user_has_a_mailbox_in_every_domain() -> None:
    mailboxes = files()["/etc/postfix/appliance/mailboxes"].splitlines()[1:]
    assert mailboxes == [
        "alice@corp.example alice", "alice@other.example alice",
        "bob@corp.example bob", "bob@other.example bob",
    ]


def test_dovecot_users_file_holds_hashes_and_locks_users_without_password() -> None:
    users = files()["/etc/dovecot/appliance/users"].splitlines()
    assert users[0] == f"alice:{HASH}:::Alice  Admin::"  # uid, gid, home: the userdb's
    assert users[1] == "bob:::::::nologin"


def test_dovecot_requires_tls_for_plaintext_and_serves_imap_pop3() -> None:
    conf = files()["/etc/dovecot/dovecot.conf"]
    assert "protocols = imap pop3 lmtp" in conf
    assert "\nauth_allow_cleartext = no\n" in conf
    assert "port = 993" in conf and "port = 995" in conf


def test_dovecot_conf_is_written_for_dovecot_2_4() -> None:
    """2.4 refuses a file whose first setting is not dovecot_config_version, and reads
    no 2.3 setting name or one-letter %variable."""
    conf = files()["/etc/dovecot/dovecot.conf"]
    settings = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert settings[:2] == ["dovecot_config_version = 2.4.1",
                            "dovecot_storage_version = 2.4.1"]
    users = files()["/etc/dovecot/appliance/users"]
    for old in ("mail_location", "disable_plaintext_auth", "ssl_cert =", "ssl_key =",
                "ssl_prefer_server_ciphers", "plugin {", "sieve_before", "quota_rule",
                "args =", "default_fields", "driver = passwd-file", "%n", "%L", "%u"):
        assert old not in conf and old not in users, old
    # "alice", "alice@domain" and "ALICE" are one user, and her home is /mail/alice
    assert "\nauth_username_format = %{user | username | lower}\n" in conf
    assert "home:default = /var/lib/appliance/mail/%{user | username}\n" in conf


def test_imap_and_pop3_can_be_switched_off() -> None:
    config = parse("[imap]\nenabled = false\n[pop3]\nenabled = false\n")
    conf = {f.path: f.text for fs in render_all(config).values() for f in fs}
    assert "protocols = lmtp\n" in conf["/etc/dovecot/dovecot.conf"]


def test_smtpd_settings_carry_users_domains_and_daemons() -> None:
    settings = json.loads(files()["/etc/appliance/smtpd.json"])
    assert settings["hostname"] == "mx.corp.example"
    assert settings["users"] == {"alice": HASH, "bob": ""}
    assert settings["local_domains"] == ["corp.example", "other.example"]
    assert settings["daemons"]["submission"]["port"] == 587
    assert settings["handoff"] == {"host": "127.0.0.1", "port": 10025, "timeout": 60}


def test_supervisord_runs_enabled_daemons_only() -> None:
    config = parse("[smtpd.smtps]\nenabled = false\n")
    conf = {f.path: f.text for fs in render_all(config).values() for f in fs}
    sup = conf["/etc/supervisord.conf"]
    assert "[program:smtpd-smtp]" in sup
    assert "[program:smtpd-submission]" in sup
    assert "[program:smtpd-smtps]" not in sup
    assert "[program:postfix]" in sup and "[program:dovecot]" in sup


def test_secret_files_are_not_world_readable() -> None:
    modes = {f.path: f.mode for fs in render_all(CONFIG).values() for f in fs}
    assert modes["/etc/dovecot/appliance/users"] == 0o640
    assert modes["/etc/appliance/smtpd.json"] == 0o640
