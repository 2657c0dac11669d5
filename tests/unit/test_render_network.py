"""[network]: Unbound's configuration, the MSS clamp, first-boot seeds, the forwarder
warning and the tracepath parser."""

from __future__ import annotations

import pytest

from appliance.boot import first_boot_overrides
from appliance.config import ConfigError, parse
from appliance.config.default import default_toml
from appliance.services import smtpd, unbound
from appliance.services.network.interfaces import forwarder_warning, probe_pmtu
from appliance.services.supervisord import supervisord_conf


def config(extra: str = "", **network: str):
    text = default_toml()
    for key, value in network.items():  # replace the default line of that key
        lines = text.split("\n")
        start = lines.index("[network]")
        at = next(i for i in range(start, len(lines)) if lines[i].startswith(f"{key} = "))
        lines[at] = f"{key} = {value}"
        text = "\n".join(lines)
    return parse(text + extra)


def test_full_recursion_with_dnssec_by_default() -> None:
    conf = unbound.unbound_conf(config())
    assert "forward-zone" not in conf
    assert 'module-config: "validator iterator"' in conf
    assert 'auto-trust-anchor-file: "' in conf and "root.key" in conf
    assert "interface: 127.0.0.1" in conf and 'root-hints: "/usr/share/dns/root.hints"' in conf
    assert "local-zone" not in conf


def test_forwarders_private_zones_and_no_dnssec() -> None:
    conf = unbound.unbound_conf(config(
        dns_forwarders='["192.0.2.1", "2001:db8::53"]', dnssec="false",
        dns_private_zones='["lan", "168.192.in-addr.arpa."]'))
    assert 'forward-zone:\n    name: "."\n    forward-addr: 192.0.2.1\n' \
           "    forward-addr: 2001:db8::53\n" in conf
    assert 'module-config: "iterator"' in conf and "trust-anchor" not in conf
    assert 'local-zone: "lan." nodefault\n    domain-insecure: "lan."' in conf
    assert 'local-zone: "168.192.in-addr.arpa." nodefault' in conf


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("dns_forwarders", '["dns.example.net"]', "is not an IP address"),
    ("dns_private_zones", '["bad zone"]', "is not a DNS zone"),
    ("mtu", "100", "not a usable MTU"),
    ("mtu", "9001", "must be an integer: 0, or 576 to 9000"),
    ("interface", '"eth0; reboot"', "not an interface name"),
])
def test_bad_network_values_are_refused(key: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        config(**{key: value})


def test_mss_clamp_follows_the_mtu_and_lookups_use_unbound() -> None:
    plain = smtpd.settings(config()).to_dict()
    assert {d["tcp_maxseg"] for d in plain["daemons"].values()} == {0}
    assert plain["dns"]["nameservers"] == ["127.0.0.1"]
    clamped = smtpd.settings(config(mtu="1492")).to_dict()
    assert {d["tcp_maxseg"] for d in clamped["daemons"].values()} == {1452}


def test_unbound_starts_first() -> None:
    conf = supervisord_conf(config())
    block = conf[conf.index("[program:unbound]"):]
    assert "command=/usr/sbin/unbound -d -p -c /etc/unbound/unbound.conf" in block
    assert "priority=1\n" in block


def test_first_boot_seeds_from_the_environment() -> None:
    seeds = first_boot_overrides({"APPLIANCE_DNS_FORWARDERS": "198.51.100.53, 192.0.2.1",
                                  "APPLIANCE_DNS_PRIVATE_ZONES": "test",
                                  "APPLIANCE_DNSSEC": "no"})
    assert seeds == {"network.dns_forwarders": ["198.51.100.53", "192.0.2.1"],
                     "network.dns_private_zones": ["test"], "network.dnssec": False}
    data = parse(default_toml(overrides=seeds)).data["network"]
    assert data["dns_forwarders"] == ["198.51.100.53", "192.0.2.1"]
    assert data["dnssec"] is False
    assert first_boot_overrides({}) == {}


def test_forwarder_warning_only_for_public_resolvers_with_block_lists() -> None:
    plain = config()
    assert forwarder_warning(["8.8.8.8"], plain) is None  # no block list is on
    lists = config(extra="")
    lists.data["smtpd"]["uribl"]["enabled"] = True
    assert forwarder_warning(["192.0.2.1"], lists) is None  # not a public resolver
    warning = forwarder_warning(["192.0.2.1", "1.1.1.1"], lists)
    assert warning and "URIBL is on" in warning and "1.1.1.1 (Cloudflare)" in warning


def test_probe_refuses_what_is_not_a_host() -> None:
    assert probe_pmtu("-n evil").error == "not a host name or address"
    assert probe_pmtu("").pmtu is None


def test_mtu_zero_restores_what_the_container_was_given(tmp_path, monkeypatch) -> None:
    from appliance.services.network import interfaces as network

    monkeypatch.setattr(network, "GIVEN_MTU", tmp_path / "interface-mtu.json")
    monkeypatch.setattr(network, "interface_mtu", lambda name: 1500)
    set_to: list[tuple[str, int]] = []
    monkeypatch.setattr(network, "set_mtu", lambda name, mtu: set_to.append((name, mtu)) or "")
    assert network.apply_mtu(config()) is None  # nothing recorded: left alone
    network.remember_given_mtu("eth0")
    network.apply_mtu(config(mtu="1400"))
    network.apply_mtu(config())
    assert set_to == [("eth0", 1400), ("eth0", 1500)]


def test_recent_transactions_reads_the_newest_lines_of_every_daemon(tmp_path,
                                                                     monkeypatch) -> None:
    from appliance import paths, status

    monkeypatch.setattr(paths, "TERSE_LOG_DIR", tmp_path)
    (tmp_path / "smtpd-smtp.log").write_text("".join(
        f"2026-11-21T10:{i // 60:02d}:{i % 60:02d} smtp line {i} {'x' * 80}\n"
        for i in range(1800)))  # 200 KB: more than the tail that is read
    (tmp_path / "smtpd-submission.log").write_text(
        "2026-11-21T10:30:00 submission newest\n")
    lines = status.recent_transactions(3)
    assert lines == [f"2026-11-21T10:29:58 smtp line 1798 {'x' * 80}",
                     f"2026-11-21T10:29:59 smtp line 1799 {'x' * 80}",
                     "2026-11-21T10:30:00 submission newest"]
