"""Roundcube, nginx and php-fpm from [webmail] and [tls]; the TLS policy of Dovecot;
the dropped-in certificate check."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from appliance.config import parse
from appliance.services import dovecot, supervisord, webmail
from appliance.tls import check_pair, ensure_self_signed

BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'


def files(extra: str = "") -> dict[str, str]:
    return {f.path: f.text for f in webmail.render(parse(BASE + extra))}


def test_roundcube_logs_in_to_dovecot_and_sends_through_587_as_the_user() -> None:
    conf = files('[webmail]\ntitle = "Bob\'s Mail"\n')[webmail.ROUNDCUBE_CONF]
    assert "$config['imap_host'] = 'localhost:143';" in conf
    assert "$config['smtp_host'] = 'tls://127.0.0.1:587';" in conf
    assert "$config['smtp_user'] = '%u';" in conf and "$config['smtp_pass'] = '%p';" in conf
    assert "sqlite:////var/lib/appliance/webmail/roundcube.db" in conf
    assert "$config['product_name'] = 'Bob\\'s Mail';" in conf  # quoted for PHP
    assert "$config['mail_domain'] = 'example.com';" in conf


def test_php_limits_follow_sme_and_fit_the_mail_size_limit() -> None:
    pool = files()[webmail.PHP_FPM_CONF]
    assert "php_admin_value[upload_max_filesize] = 10M" in pool  # SME UploadMaxFilesize
    assert "php_admin_value[memory_limit] = 128M" in pool
    # 10 MB would be 14 MB in base64, over a 10 MB mail limit: lowered to what fits
    small = files("[smtpd]\nmax_message_size = 10000000\n")
    assert "php_admin_value[upload_max_filesize] = 7M" in small[webmail.PHP_FPM_CONF]
    assert "$config['max_message_size'] = '7M';" in small[webmail.ROUNDCUBE_CONF]
    assert "client_max_body_size 10m;" in small[webmail.NGINX_CONF]


def test_nginx_redirects_http_and_serves_tls12_with_modern_ciphers_only() -> None:
    conf = files()[webmail.NGINX_CONF]
    assert "return 301 https://$host$request_uri;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:" in conf and "CBC" not in conf
    assert "allow" not in conf  # public by default
    assert "ssl_protocols TLSv1.3;" in files('[webmail]\ntls_min_version = "TLSv1.3"\n')[
        webmail.NGINX_CONF]


def test_private_webmail_allows_only_loopback_and_the_local_networks() -> None:
    conf = files('[network]\nlocal_networks = ["192.168.1.0/24"]\n'
                 '[webmail]\naccess = "private"\n')[webmail.NGINX_CONF]
    rules = [line.strip() for line in conf.splitlines() if line.strip().startswith(
        ("allow", "deny"))]
    assert rules == ["allow 127.0.0.0/8;", "allow 192.168.1.0/24;", "deny all;"]


def test_webmail_off_means_no_php_but_nginx_still_serves_the_mta_sts_policy() -> None:
    on = supervisord.supervisord_conf(parse(BASE))
    off = supervisord.supervisord_conf(parse(BASE + "[webmail]\nenabled = false\n"))
    assert "[program:nginx]" in on and "[program:php-fpm]" in on
    assert "[program:nginx]" in off and "[program:php-fpm]" not in off


def test_dovecot_plaintext_logins_private_and_public() -> None:
    private = dovecot.dovecot_conf(parse(BASE + '[network]\nlocal_networks = ["10.0.0.0/8"]\n'))
    assert "\nauth_allow_cleartext = no\n" in private
    assert "remote 10.0.0.0/8 {\n  protocol imap {\n    auth_allow_cleartext = yes" in private
    assert "remote 10.0.0.0/8 {\n  protocol pop3 {\n    auth_allow_cleartext = yes" in private
    public = dovecot.dovecot_conf(parse(BASE + '[imap]\naccess = "public"\n'))
    assert "protocol imap {\n  auth_allow_cleartext = yes\n}" in public
    assert "protocol pop3 {\n  auth_allow_cleartext = yes" not in public
    assert "remote 127.0.0.0/8 {\n  protocol pop3 {\n    auth_allow_cleartext = yes" in public
    assert "remote 127.0.0.0/8 {\n  protocol imap {" not in public
    assert "ssl_cipher_list = ECDHE-ECDSA-AES128-GCM-SHA256:" in public
    assert "process_limit = 400" in public  # SME ConcurrencyLimit
    assert "separator = ." in public  # SME: a dot in a folder name makes subfolders


def test_a_certificate_and_key_must_belong_together(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ensure_self_signed(a / "cert.pem", a / "key.pem", "mail.example.com", "example.com")
    ensure_self_signed(b / "cert.pem", b / "key.pem", "other.example.com", "example.com")
    pair = check_pair(a / "cert.pem", a / "key.pem")
    assert len(pair.fingerprint) == 64
    assert pair.expires > datetime.datetime.now(datetime.UTC)
    assert pair.key_pem == (a / "key.pem").read_bytes()  # what is handed on is what was checked
    with pytest.raises(ValueError, match="is not the key of the certificate"):
        check_pair(a / "cert.pem", b / "key.pem")
    (b / "key.pem").write_text("not a key")
    with pytest.raises(ValueError, match="not a PEM private key"):
        check_pair(b / "cert.pem", b / "key.pem")
    with pytest.raises(ValueError, match="cannot read"):
        check_pair(tmp_path / "none.pem", a / "key.pem")


def test_imap_and_pop3_share_one_minimum_tls_version() -> None:
    conf = dovecot.dovecot_conf(parse(BASE + '[tls]\nmin_version = "TLSv1.3"\n'))
    assert conf.count("ssl_min_protocol") == 1  # Dovecot ignores it in protocol blocks
    assert "\nssl_min_protocol = TLSv1.3\n" in conf


def test_dovecot_runs_managesieve_on_4190_with_starttls_except_from_loopback() -> None:
    conf = {f.path: f.text for f in dovecot.render(parse(BASE))}["/etc/dovecot/dovecot.conf"]
    assert "protocols = imap pop3 lmtp sieve" in conf
    assert "service managesieve-login {\n  inet_listener sieve {\n    port = 4190\n" in conf
    # TLS as for every listener: no exception for the sieve protocol, from anywhere
    assert "\nauth_allow_cleartext = no\n" in conf and "protocol sieve" not in conf
    # the user's own scripts on the data volume, after our "before" ones
    assert ("sieve_script personal {\n  type = personal\n  path = ~/sieve\n"
            "  active_path = ~/.dovecot.sieve\n}") in conf
    # Out of Office stays; enotify's `notify :from` could send with any From: past the
    # SMTP daemons' sender check
    assert "sieve_extensions {\n  vacation = yes\n  enotify = no\n}" in conf
    assert "sieve_quota_script_count = 50\n" in conf and "sieve_quota_storage_size = 4M\n" in conf


def test_pop3_uidls_stay_those_of_dovecot_2_3() -> None:
    """2.3's %08Xu%08Xv printed lower-case hex (UID 1, UIDVALIDITY 0x6b1665cd:
    000000016b1665cd, seen on both versions over one Maildir). A change here makes every
    POP3 client download its whole mailbox again."""
    conf = dovecot.dovecot_conf(parse(BASE))
    assert "protocol pop3 {\n" in conf
    assert "\n  pop3_uidl_format = %{uid | hex(8)}%{uidvalidity | hex(8)}\n" in conf


def test_spam_filed_into_junkmail_gets_no_out_of_office_reply() -> None:
    sieve = dovecot.junkmail_sieve()
    assert 'fileinto "junkmail";\n  stop;' in sieve  # the user's script does not run


def test_roundcube_filters_and_out_of_office_use_managesieve_over_loopback() -> None:
    conf = files()[webmail.ROUNDCUBE_CONF]
    assert ("$config['plugins'] = ['archive', 'managesieve', 'password', 'app_passwords',\n"
            "                      'login_address'];" in conf)
    assert "$config['managesieve_host'] = '127.0.0.1:4190';" in conf
    assert "$config['managesieve_usetls'] = false;" in conf
    assert "$config['managesieve_vacation'] = 1;" in conf


def test_roundcube_changes_passwords_through_the_appliance_driver() -> None:
    conf = files()[webmail.ROUNDCUBE_CONF]
    assert "$config['password_driver'] = 'appliance';" in conf
    assert "$config['password_confirm_current'] = true;" in conf
    assert "$config['password_minimum_length'] = 12;" in conf  # system.password_min_length
    shorter = webmail.roundcube_conf(parse(BASE + "password_min_length = 8\n"))
    assert "$config['password_minimum_length'] = 8;" in shorter
    root = Path(__file__).resolve().parents[2] / "rootfs"
    driver = root / "usr/share/roundcube/plugins/password/drivers/appliance.php"
    text = driver.read_text()
    assert "class rcube_appliance_password" in text
    # an argument array (no shell), the one command sudoers allows, nothing else
    assert ("const COMMAND = ['/usr/bin/sudo', '-n', '/usr/local/bin/appliance', "
            "'webmail-password'];") in text
    assert "proc_open(self::COMMAND," in text
    assert "popen(" not in text.replace("proc_open(", "") and "exec(" not in text
    rules = [line for line in (root / "etc/sudoers.d/webmail-password").read_text()
             .splitlines() if line and not line.startswith("#")]
    assert rules[0] == "www-data ALL=(root) NOPASSWD: /usr/local/bin/appliance webmail-password"
    assert [r for r in rules[1:] if not r.startswith("Defaults:www-data !mail_")] == []
