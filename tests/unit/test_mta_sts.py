"""MTA-STS and DANE: the policy we publish (appliance.mta_sts, nginx), the resolver Postfix
asks for receivers' policies, DANE in main.cf, trust anchors for Unbound, and the keys."""

from __future__ import annotations

import re

import pytest

from appliance import mta_sts
from appliance.config import ConfigError, parse
from appliance.services import mta_sts_resolver, postfix, unbound, webmail
from appliance.services.supervisord import supervisord_conf

BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'
ANCHOR = "corp.example. 3600 IN DS 12345 13 2 " + "AB" * 32


def test_policy_text_is_rfc_8461_with_our_mx() -> None:
    text = mta_sts.policy_text("Mail.Example.COM.", "enforce", 86400)
    assert text == "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"


@pytest.mark.parametrize(("mode", "max_age"), [("strict", 86400), ("testing", -1),
                                               ("testing", 31557601)])
def test_policy_text_refuses_what_rfc_8461_does_not_allow(mode: str, max_age: int) -> None:
    with pytest.raises(ValueError):
        mta_sts.policy_text("mail.example.com", mode, max_age)


def test_policy_id_is_short_alphanumeric_and_follows_the_text() -> None:
    a = mta_sts.policy_text("mail.example.com", "testing", 604800)
    b = mta_sts.policy_text("mail.example.com", "enforce", 604800)
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", mta_sts.policy_id(a))
    assert mta_sts.policy_id(a) == mta_sts.policy_id(a) != mta_sts.policy_id(b)
    assert mta_sts.txt_record(a) == f"v=STSv1; id={mta_sts.policy_id(a)}"


def test_nginx_serves_the_rendered_policy_as_text_for_every_name() -> None:
    files = {f.path: f.text for f in webmail.render(parse(
        BASE + "[tls]\nmta_sts_mode = \"enforce\"\nmta_sts_max_age = 86400\n"))}
    assert files[webmail.MTA_STS_POLICY] == mta_sts.policy_text("mail.example.com",
                                                                "enforce", 86400)
    conf = files[webmail.NGINX_CONF]
    block = conf[conf.index("location = /.well-known/mta-sts.txt"):]
    assert block.startswith("location = /.well-known/mta-sts.txt {\n"
                            f"            alias {webmail.MTA_STS_POLICY};\n"
                            "            default_type text/plain;\n        }")
    # in the HTTPS default server (it answers mta-sts.DOMAIN of every domain)
    https = conf[conf.index("listen 443 ssl http2 default_server"):]
    assert "location = /.well-known/mta-sts.txt" in https


def test_defaults_testing_a_week_and_both_outbound_checks_on() -> None:
    t = parse(BASE).data["tls"]
    assert (t["mta_sts_mode"], t["mta_sts_max_age"], t["mta_sts_outbound"], t["dane"]) == (
        "testing", 604800, True, True)
    assert parse(BASE).data["network"]["dns_trust_anchors"] == []


@pytest.mark.parametrize("extra", ['[tls]\nmta_sts_mode = "strict"\n',
                                   "[tls]\nmta_sts_max_age = 60\n",
                                   "[tls]\nmta_sts_max_age = 40000000\n",
                                   '[network]\ndns_trust_anchors = ["x.example. IN A 1.2.3.4"]\n',
                                   '[network]\ndns_trust_anchors = ["not a record"]\n'])
def test_bad_mta_sts_and_anchor_values_are_refused(extra: str) -> None:
    with pytest.raises(ConfigError):
        parse(BASE + extra)


def test_postfix_asks_the_smarthost_entry_then_the_resolver_and_uses_dane() -> None:
    main = postfix.main_cf(parse(BASE))
    assert ("smtp_tls_policy_maps = texthash:/etc/postfix/appliance/tls_policy, "
            "socketmap:inet:127.0.0.1:8461:postfix\n") in main
    assert "\nsmtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane\n" in main


def test_a_smarthost_keeps_its_own_level_before_any_policy() -> None:
    config = parse(BASE + '[delivery]\nsmarthost = "relay.isp.example:587"\n'
                   'smarthost_tls = "encrypt"\n')
    assert postfix.tls_policy(config).splitlines()[1] == "[relay.isp.example]:587 encrypt"
    maps = re.search(r"smtp_tls_policy_maps = (.*)", postfix.main_cf(config))
    assert maps and maps.group(1).startswith("texthash:")


def test_dane_needs_dnssec_and_the_switches_turn_things_off() -> None:
    no_dnssec = postfix.main_cf(parse(BASE + "[network]\ndnssec = false\n"))
    assert "smtp_tls_security_level = may\n" in no_dnssec
    assert "smtp_dns_support_level" not in no_dnssec
    off = parse(BASE + "[tls]\nmta_sts_outbound = false\ndane = false\n")
    main = postfix.main_cf(off)
    assert "smtp_tls_policy_maps = texthash:/etc/postfix/appliance/tls_policy\n" in main
    assert "smtp_tls_security_level = may\n" in main
    assert "[program:mta-sts-resolver]" not in supervisord_conf(off)


def test_resolver_listens_where_postfix_asks_caches_on_the_volume_and_drops_root() -> None:
    config = parse(BASE)
    conf = mta_sts_resolver.daemon_conf(config)
    assert "host: 127.0.0.1\nport: 8461\n" in conf
    assert f'filename: "{mta_sts_resolver.CACHE_DIR}/cache.db"' in conf
    assert "strict_testing: false" in conf
    sup = supervisord_conf(config)
    assert ("[program:mta-sts-resolver]\ncommand=/usr/bin/mta-sts-daemon -c "
            "/etc/appliance/mta-sts-daemon.yml -u _mta-sts -g _mta-sts\npriority=5\n") in sup
    assert sup.index("[program:mta-sts-resolver]") < sup.index("[program:postfix]")


def test_trust_anchors_reach_unbound_only_with_dnssec() -> None:
    on = unbound.unbound_conf(parse(BASE + f'[network]\ndns_trust_anchors = ["{ANCHOR}"]\n'))
    assert f'    trust-anchor: "{ANCHOR}"\n' in on
    off = unbound.unbound_conf(parse(
        BASE + f'[network]\ndnssec = false\ndns_trust_anchors = ["{ANCHOR}"]\n'))
    assert "trust-anchor:" not in off
