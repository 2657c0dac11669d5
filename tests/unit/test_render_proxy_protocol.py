"""network.trusted_proxies: the PROXY protocol in the SMTP daemons' settings, Dovecot's
proxied listeners and nginx's, and nothing of it while the list is empty (the default)."""

from __future__ import annotations

import pytest

from appliance.config import ConfigError, parse
from appliance.services import dovecot, smtpd, webmail

BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'
PROXIES = '[network]\ntrusted_proxies = ["198.51.100.1/32", "2001:db8::/64"]\n'


def test_no_trusted_proxies_by_default_and_nothing_proxied_anywhere() -> None:
    config = parse(BASE)
    assert config.data["network"]["trusted_proxies"] == []
    assert smtpd.settings(config).trusted_proxies == ()
    assert "haproxy" not in dovecot.dovecot_conf(config)
    nginx = webmail.nginx_conf(config)
    assert "proxy_protocol" not in nginx and "set_real_ip_from" not in nginx


def test_a_bad_network_is_refused_with_its_key() -> None:
    with pytest.raises(ConfigError, match=r"network\.trusted_proxies.*'lb\.example' is not "
                                          r"a network"):
        parse(BASE + '[network]\ntrusted_proxies = ["lb.example"]\n')


def test_the_smtp_daemons_get_the_trusted_proxies() -> None:
    settings = smtpd.settings(parse(BASE + PROXIES))
    assert settings.trusted_proxies == ("198.51.100.1/32", "2001:db8::/64")


def test_dovecot_trusts_the_proxies_on_listeners_of_their_own() -> None:
    conf = dovecot.dovecot_conf(parse(BASE + PROXIES))
    assert "\nhaproxy_trusted_networks = 198.51.100.1/32 2001:db8::/64\n" in conf
    for _service, name, port, tls in dovecot.PROXIED_LISTENERS:
        ssl = "    ssl = yes\n" if tls else ""
        assert (f"  inet_listener {name} {{\n    port = {port}\n{ssl}    haproxy = yes\n"
                "  }\n") in conf
    assert [p for *_, p, _tls in dovecot.PROXIED_LISTENERS] == [10143, 10993, 10110, 10995]
    # the direct ports stay as they were: no PROXY header expected there
    assert "  inet_listener imap {\n    port = 143\n  }\n" in conf
    assert "  inet_listener pop3s {\n    port = 995\n    ssl = yes\n  }\n" in conf


def test_nginx_believes_the_proxies_only_on_its_proxied_listeners() -> None:
    conf = webmail.nginx_conf(parse(BASE + PROXIES))
    lines = [line.strip() for line in conf.splitlines()]
    assert "listen 8443 ssl http2 proxy_protocol;" in lines
    assert "listen [::]:8443 ssl http2 proxy_protocol;" in lines
    assert "listen 8080 proxy_protocol;" in lines
    assert "listen 443 ssl http2 default_server;" in lines  # direct, as before
    assert lines.count("set_real_ip_from 198.51.100.1/32;") == 2  # in both servers
    assert lines.count("set_real_ip_from 2001:db8::/64;") == 2
    assert lines.count("real_ip_header proxy_protocol;") == 2
