"""print-dns's records (appliance/dns_records.py) and `appliance dns check`, which looks
them up: here through a real DNS server on loopback (the e2e tests' own server,
tests/e2e/peers/dnsserver.py), publishing what print-dns printed, then breaking one
record at a time."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import dkim_keys, dns_check, paths
from appliance.commands import table
from appliance.config import load
from appliance.dns_records import ADDRESS_PLACEHOLDER, expected

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests/e2e/peers"  # a folder of scripts, run as such: their imports are
_spec = importlib.util.spec_from_file_location("dnsserver", PEERS / "dnsserver.py")
assert _spec and _spec.loader
dnsserver = importlib.util.module_from_spec(_spec)
sys.path.insert(0, str(PEERS))  # each other's, from the folder
try:
    _spec.loader.exec_module(dnsserver)
finally:
    sys.path.remove(str(PEERS))


class Server:
    """The test DNS server's answers on a loopback UDP port, records set per test."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "zones.json"
        self.names: dict[str, dict[str, list[str]]] = {}
        self.write()
        self.zones = dnsserver.Zones(str(self.path))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            out = self.zones.answer(data)
            if out is not None:
                self.sock.sendto(out, addr)

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"names": self.names}))
        tmp.replace(self.path)
        if hasattr(self, "zones"):
            self.zones.mtime = -1.0  # re-read at once, even within the same mtime tick

    def set(self, name: str, rdtype: str, *values: str) -> None:
        self.names.setdefault(name, {})[rdtype] = list(values)
        self.write()

    def lookup(self) -> dns_check.Lookup:
        return dns_check.Lookup(dns_check.resolver("127.0.0.1", self.port))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.sock.close()


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    d = tmp_path / "dkim"
    dkim_keys.ensure_default_key(d, bits=1024)
    return d


@pytest.fixture
def site(tmp_path: Path, keydir: Path, monkeypatch: pytest.MonkeyPatch):
    conf = tmp_path / "appliance.toml"
    conf.write_text('[system]\nhostname = "mail"\ndomain = "example.com"\n'
                    '[network]\npublic_addresses = ["192.0.2.25", "2001:db8::25"]\n'
                    '[domains."example.org"]\n')
    monkeypatch.setattr(paths, "CONFIG", conf)
    monkeypatch.setattr(paths, "DKIM_KEYS", keydir)
    monkeypatch.setattr(dns_check, "LAST_CHECK", tmp_path / "dns-check.json")
    return conf


def records(domain: str = "example.com"):
    from appliance.commands.dns import records_for

    config, _settings, name, found = records_for(domain)
    return config, found


def publish(server: Server, domain: str = "example.com") -> None:
    """Everything print-dns asks for, as the admin would publish it."""
    _config, wanted = records(domain)
    for record in wanted:
        if record.in_zone or record.rdtype != "A":
            server.names.setdefault(record.fqdn(domain), {}).setdefault(
                record.rdtype, []).append(record.value)
    server.set("mail.example.com", "A", "192.0.2.25")
    server.set("mail.example.com", "AAAA", "2001:db8::25")
    server.set("25.2.0.192.in-addr.arpa", "PTR", "mail.example.com.")
    server.set("5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
               "PTR", "mail.example.com.")


def states(server: Server, domain: str = "example.com") -> dict[tuple[str, str], str]:
    config, wanted = records(domain)
    return {(f.name, f.rdtype): f.state
            for f in dns_check.check(domain, wanted, config, server.lookup())}


def test_the_records_print_dns_asks_for(site):
    config, wanted = records()
    lines = [r.zone_line() for r in wanted]
    assert lines[:3] == ["@ IN MX 10 mail.example.com.", "mail IN A 192.0.2.25",
                         "mail IN AAAA 2001:db8::25"]
    assert lines[3].startswith('default._domainkey IN TXT "v=DKIM1;k=rsa;p=')
    assert '@ IN TXT "v=spf1 mx a -all"' in lines
    assert any(line.startswith('_mta-sts IN TXT "v=STSv1; id=') for line in lines)
    assert any(line.startswith('_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:dmarc-feedback@')
               for line in lines)
    for alias in ("mta-sts", "autoconfig", "autodiscover"):
        assert f"{alias} IN CNAME mail.example.com." in lines
    assert "_submissions._tcp IN SRV 0 1 465 mail.example.com." in lines
    assert "_submission._tcp IN SRV 10 1 587 mail.example.com." in lines
    assert "_imaps._tcp IN SRV 0 1 993 mail.example.com." in lines
    assert "_pop3s._tcp IN SRV 0 1 995 mail.example.com." in lines


def test_a_secondary_domain_points_at_the_host_in_the_primary_zone(site):
    _config, wanted = records("example.org")
    lines = [r.zone_line() for r in wanted]
    assert lines[0] == "@ IN MX 10 mail.example.com."
    assert lines[1] == "; mail.example.com. IN A 192.0.2.25 (in the zone of mail.example.com)"
    assert "mta-sts IN CNAME mail.example.com." in lines


def test_a_service_switched_off_is_published_as_not_offered(site):
    site.write_text(site.read_text().replace('[domains."example.org"]\n',
                                             '[pop3]\nenabled = false\n'))
    _config, wanted = records()
    lines = [r.zone_line() for r in wanted]
    assert "_pop3s._tcp IN SRV 0 0 0 . ; not offered here" in lines
    assert "_pop3._tcp IN SRV 0 0 0 . ; not offered here" in lines


def test_no_public_address_gives_a_placeholder_dns_check_does_not_compare(site, server):
    site.write_text(site.read_text().replace(
        'public_addresses = ["192.0.2.25", "2001:db8::25"]', "public_addresses = []"))
    config, wanted = records()
    assert wanted[1].value == ADDRESS_PLACEHOLDER
    server.set("mail.example.com", "A", "203.0.113.9")
    [finding] = [f for f in dns_check.check("example.com", wanted, config, server.lookup())
                 if f.rdtype == "A"]
    assert (finding.state, finding.note) == ("ok", "not compared: network.public_addresses "
                                             "is empty")


def test_everything_published_is_ok(site, server, capsys, monkeypatch):
    publish(server)
    assert set(states(server).values()) == {"ok"}
    monkeypatch.setattr(dns_check, "RESOLVER_PORT", server.port)
    assert table.main(["dns", "check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("example.com: 2")  # "2N ok"
    assert "missing" not in out and "wrong" not in out
    [line] = dns_check.status_lines()
    assert line.startswith("DNS example.com: ") and "ok (checked " in line


def test_a_missing_dkim_record_is_reported_with_the_value_to_publish(site, server, capsys,
                                                                     monkeypatch):
    publish(server)
    del server.names["default._domainkey.example.com"]
    server.write()
    monkeypatch.setattr(dns_check, "RESOLVER_PORT", server.port)
    assert table.main(["dns", "check"]) == 1
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines()[:-1] if "_domainkey" in x]
    assert line.startswith("missing default._domainkey.example.com TXT: expected v=DKIM1;")
    assert "missing: default._domainkey.example.com TXT" in out.splitlines()[-1]
    assert "1 missing" in dns_check.status_lines()[0]


def test_wrong_records_are_told_apart_from_missing_ones(site, server):
    publish(server)
    server.set("example.com", "MX", "10 mx.elsewhere.example.")
    server.set("_mta-sts.example.com", "TXT", "v=STSv1; id=2019old")
    server.set("_imaps._tcp.example.com", "SRV", "0 1 9993 mail.example.com.")
    server.set("mail.example.com", "AAAA", "2001:db8::99")
    server.set("25.2.0.192.in-addr.arpa", "PTR", "host-25.isp.example.")
    got = states(server)
    assert got[("example.com", "MX")] == "wrong"
    assert got[("_mta-sts.example.com", "TXT")] == "wrong"
    assert got[("_imaps._tcp.example.com", "SRV")] == "wrong"
    assert got[("mail.example.com", "AAAA")] == "wrong"
    assert got[("25.2.0.192.in-addr.arpa", "PTR")] == "wrong"
    assert got[("mail.example.com", "A")] == "ok"
    del server.names["_smtp._tls.example.com"]
    server.write()
    assert states(server)[("_smtp._tls.example.com", "TXT")] == "missing"


def test_two_spf_records_are_wrong_and_an_own_spf_record_is_evaluated(site, server):
    publish(server)
    server.set("example.com", "TXT", "v=spf1 mx a -all", "v=spf1 -all")
    assert states(server)[("example.com", "TXT")] == "wrong"  # two: a permerror
    server.set("example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")
    assert states(server)[("example.com", "TXT")] == "ok"
    server.set("example.com", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    config, wanted = records()
    [spf] = [f for f in dns_check.check("example.com", wanted, config, server.lookup())
             if f.name == "example.com" and f.rdtype == "TXT"]
    assert spf.state == "wrong" and "192.0.2.25: fail" in spf.note


def test_an_alias_may_be_address_records_of_the_host(site, server):
    publish(server)
    del server.names["autoconfig.example.com"]
    server.set("autoconfig.example.com", "A", "192.0.2.25")
    server.set("autoconfig.example.com", "AAAA", "2001:db8::25")
    assert states(server)[("autoconfig.example.com", "CNAME")] == "ok"
    server.set("autoconfig.example.com", "A", "203.0.113.1")
    assert states(server)[("autoconfig.example.com", "CNAME")] == "wrong"


def test_a_dead_resolver_is_a_failed_lookup_not_a_missing_record(site):
    config, wanted = records()
    dead = dns_check.resolver("127.0.0.1", _unused_port())
    dead.lifetime = 0.5
    findings = dns_check.check("example.com", wanted[:1], config, dns_check.Lookup(dead))
    assert findings[0].state == "wrong" and findings[0].note.startswith("lookup failed")


def test_not_our_domain_exits_2(site, capsys):
    assert table.main(["dns", "check", "not-ours.example"]) == 2
    assert "not one of our domains" in capsys.readouterr().err


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_print_dns_prints_every_record(site, capsys):
    assert table.main(["print-dns"]) == 0
    out = capsys.readouterr().out
    config = load(site)
    from appliance.services.smtpd import settings

    for record in expected("example.com", config, settings(config).to_dict(),
                           paths.DKIM_KEYS):
        assert record.zone_line() in out


def test_a_domain_delegated_elsewhere_gets_no_client_records(site):
    site.write_text(site.read_text().replace('[domains."example.org"]\n',
                                             '[domains."example.org"]\n'
                                             'mail_server = "exchange.example.org"\n'))
    _config, wanted = records("example.org")
    kinds = {(r.name, r.rdtype) for r in wanted}
    assert ("@", "MX") in kinds and ("_mta-sts", "TXT") in kinds  # its mail still comes here
    assert ("mta-sts", "CNAME") in kinds
    assert not {r for r in wanted if r.rdtype == "SRV" or r.name in ("autoconfig",
                                                                     "autodiscover")}


def test_the_checker_asks_unbound_where_it_listens() -> None:
    from appliance.services import unbound

    assert dns_check.RESOLVER == unbound.LISTEN


def test_a_dkim_record_without_its_optional_v_tag_and_srv_in_capitals_are_ok(site, server):
    publish(server)
    name = "default._domainkey.example.com"
    server.set(name, "TXT", server.names[name]["TXT"][0].replace("v=DKIM1;", ""))
    server.set("_imaps._tcp.example.com", "SRV", "0 1 993 MAIL.Example.COM.")
    got = states(server)
    assert got[(name, "TXT")] == "ok"
    assert got[("_imaps._tcp.example.com", "SRV")] == "ok"


def test_a_removed_domain_leaves_the_saved_results(site, server, monkeypatch):
    publish(server)
    monkeypatch.setattr(dns_check, "RESOLVER_PORT", server.port)
    assert table.main(["dns", "check", "--all"]) == 1  # example.org's records: unpublished
    assert [line.split(":")[0] for line in dns_check.status_lines()] == [
        "DNS example.com", "DNS example.org"]
    site.write_text(site.read_text().replace('[domains."example.org"]\n', ""))
    assert table.main(["dns", "check"]) == 0
    assert [line.split(":")[0] for line in dns_check.status_lines()] == ["DNS example.com"]


def test_a_summary_names_at_most_three_failing_records() -> None:
    findings = [dns_check.Finding(f"n{i}.example.com", "TXT", "missing", "x") for i in range(5)]
    findings.append(dns_check.Finding("example.com", "MX", "ok", "10 mail.example.com."))
    assert dns_check.summary(findings) == ("1 ok, 5 missing: n0.example.com TXT, "
                                           "n1.example.com TXT, 3 more")
