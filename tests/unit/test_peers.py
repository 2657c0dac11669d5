"""The plugin chains per daemon and peer (SME's peers table)."""

from __future__ import annotations

from dataclasses import replace

from appliance.config import parse
from appliance.config.default import default_toml
from appliance.services.smtpd import plugin_settings
from appliance.smtpd import peers
from appliance.smtpd.settings import PluginSettings


def defaults() -> PluginSettings:
    return plugin_settings(parse(default_toml()))


def test_internet_chain_has_the_spam_checks_in_sme_order() -> None:
    chain = peers.chain("smtp", peers.INTERNET, defaults())
    for name in ("earlytalker", "helo", "resolvable_fromhost", "spf", "dkim", "dmarc",
                 "naughty", "badrcptto", "check_goodrcptto", "rcpt_ok"):
        assert name in chain, name
    assert chain.index("helo") < chain.index("naughty") < chain.index("rcpt_ok")
    assert chain.index("check_goodrcptto") < chain.index("rcpt_ok")
    # off by default, as in SME
    for name in ("dnsbl", "rhsbl", "uribl", "karma", "greylisting", "bcc", "disclaimer",
                 "dkim_sign"):
        assert name not in chain, name


def test_local_and_authenticated_peers_skip_the_spam_checks() -> None:
    settings = defaults()
    settings = replace(settings, dkim_sign=replace(settings.dkim_sign, enabled=True))
    for peer in (peers.LOCAL, peers.AUTHENTICATED):
        chain = peers.chain("smtp", peer, settings)
        for name in ("earlytalker", "helo", "spf", "dnsbl", "naughty", "karma", "badrcptto",
                     "count_unrecognized_commands", "loadcheck"):
            assert name not in chain, (peer, name)
        assert "dkim_sign" in chain and "rcpt_ok" in chain


def test_submission_daemons_use_the_authenticated_chain_for_everyone() -> None:
    settings = defaults()
    for daemon in ("smtps", "submission"):
        for peer in peers.PEERS:
            assert peers.chain(daemon, peer, settings) == peers.chain(
                "smtp", peers.AUTHENTICATED, settings)


def test_enabling_a_plugin_puts_it_in_its_chains_only() -> None:
    settings = defaults()
    settings = replace(settings, dnsbl=replace(settings.dnsbl, enabled=True))
    assert "dnsbl" in peers.chain("smtp", peers.INTERNET, settings)
    assert "dnsbl" not in peers.chain("smtp", peers.LOCAL, settings)


def test_local_networks_decide_the_peer_and_ipv4_mapped_addresses_count() -> None:
    local = peers.LocalNetworks(["127.0.0.0/8", "192.168.1.0/24"])
    assert peers.peer_of("192.168.1.20", local) == peers.LOCAL
    assert peers.peer_of("::ffff:192.168.1.20", local) == peers.LOCAL
    assert peers.peer_of("172.17.0.1", local) == peers.INTERNET  # never the bridge
    assert peers.peer_of("not-an-ip", local) == peers.INTERNET
