"""helo: qpsmtpd's HELO tests per policy; DNS timeouts never fail a test."""

from __future__ import annotations

import dns.name as dns_name
import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

IP = "198.51.100.7"
PTR_NAME = "7.100.51.198.in-addr.arpa"


def _fails(result, test):
    assert result is not None and result.verdict is Verdict.DENY, result
    assert result.reply.startswith("550 5.7.1 ") and f"({test})" in result.reply


def _good_dns(dns, name="mx.sender.example", ip=IP):
    dns.add(name, "A", ip)
    dns.add(PTR_NAME, "PTR", name + ".")


async def test_lenient_good_name_passes_without_dns(make_plugin, conn, dns):
    plugin = make_plugin("helo", reject="deny")
    for name in ("mx.sender.example", "my-laptop", f"[{IP}]"):
        assert await plugin.hook_helo(conn(), name) is None, name
    assert dns.asked == []


@pytest.mark.parametrize(("name", "test"), [
    ("AOL.com", "is_in_badhelo"),
    ("localhost", "invalid_localhost"),
    ("[192.0.2.1]", "is_forged_literal"),
    ("[IPv6:2001:db8::1]", "is_forged_literal"),
    (IP, "is_plain_ip"),
])
async def test_lenient_failures(make_plugin, conn, name, test):
    plugin = make_plugin("helo", reject="deny")
    c = conn()
    _fails(await plugin.hook_helo(c, name), test)
    assert c.karma == -1


async def test_bad_helo_wildcards(make_plugin, conn):
    plugin = make_plugin("helo", reject="deny", bad_helo=["*.dyn.example"])
    _fails(await plugin.hook_helo(conn(), "host-1.dyn.example"), "is_in_badhelo")
    assert await plugin.hook_helo(conn(), "dyn.example") is None


async def test_localhost_from_loopback_and_matching_literal_pass(make_plugin, conn):
    plugin = make_plugin("helo", reject="deny")
    assert await plugin.hook_helo(conn(ip="127.0.0.1"), "localhost") is None
    assert await plugin.hook_helo(conn(ip="2001:db8::1"), "[IPv6:2001:db8::1]") is None


async def test_naughty_mode_leaves_the_karma_to_the_pipeline(make_plugin, conn):
    plugin = make_plugin("helo")  # reject = naughty by default
    c = conn()
    result = await plugin.hook_helo(c, "yahoo.com")
    assert result.verdict is Verdict.NAUGHTY and "(is_in_badhelo)" in result.reply
    assert c.karma == 0


async def test_off_mode_only_logs(make_plugin, conn):
    plugin = make_plugin("helo", reject="off")
    result = await plugin.hook_helo(conn(), "yahoo.com")
    assert result is None or result.verdict is Verdict.DECLINED


@pytest.mark.parametrize("name", ["my-laptop", "bad_name.example", "mx.sender.example."])
async def test_rfc_not_fqdn(make_plugin, conn, dns, name):
    _good_dns(dns)
    plugin = make_plugin("helo", policy="rfc", reject="deny")
    result = await plugin.hook_helo(conn(), name)
    if name.endswith("."):
        assert result is None  # a final dot is still a fully qualified name
    else:
        _fails(result, "is_not_fqdn")


async def test_rfc_needs_forward_and_reverse_dns(make_plugin, conn, dns):
    plugin = make_plugin("helo", policy="rfc", reject="deny")
    _fails(await plugin.hook_helo(conn(), "mx.sender.example"), "no_forward_dns")
    dns.add("mx.sender.example", "AAAA", "2001:db8::25")
    _fails(await plugin.hook_helo(conn(), "mx.sender.example"), "no_reverse_dns")
    dns.add(PTR_NAME, "PTR", "whatever.isp.example.")
    assert await plugin.hook_helo(conn(), "mx.sender.example") is None


async def test_rfc_address_literal_needs_only_reverse_dns(make_plugin, conn, dns):
    plugin = make_plugin("helo", policy="rfc", reject="deny")
    _fails(await plugin.hook_helo(conn(), f"[{IP}]"), "no_reverse_dns")
    dns.add(PTR_NAME, "PTR", "host.isp.example.")
    assert await plugin.hook_helo(conn(), f"[{IP}]") is None
    assert ("[198.51.100.7]", "A") not in dns.asked


async def test_rfc_dns_timeouts_pass(make_plugin, conn, dns):
    plugin = make_plugin("helo", policy="strict", reject="deny")
    dns.timeouts.update({"mx.sender.example", PTR_NAME})
    assert await plugin.hook_helo(conn(), "mx.sender.example") is None
    dns.timeouts.clear()
    dns.add("mx.sender.example", "A", "203.0.113.9")  # resolves, but elsewhere
    dns.timeouts.add(PTR_NAME)  # and the reverse side cannot be told
    assert await plugin.hook_helo(conn(), "mx.sender.example") is None


async def test_unresolvable_label_is_no_forward_dns(make_plugin, conn, dns):
    dns.add(PTR_NAME, "PTR", "host.isp.example.")
    plugin = make_plugin("helo", policy="rfc", reject="deny")

    async def too_long(name):  # what dnspython raises for a 64+ character label
        raise dns_name.LabelTooLong

    dns.a = dns.aaaa = too_long
    _fails(await plugin.hook_helo(conn(), "a" * 70 + ".example"), "no_forward_dns")


async def test_strict_refuses_address_literals(make_plugin, conn, dns):
    dns.add(PTR_NAME, "PTR", "host.isp.example.")
    plugin = make_plugin("helo", policy="strict", reject="deny")
    _fails(await plugin.hook_helo(conn(), f"[{IP}]"), "is_address_literal")


async def test_strict_matching_dns(make_plugin, conn, dns):
    plugin = make_plugin("helo", policy="strict", reject="deny")
    dns.add("mx.sender.example", "A", "203.0.113.9")
    dns.add(PTR_NAME, "PTR", "dsl-7.isp.example.")
    _fails(await plugin.hook_helo(conn(), "mx.sender.example"), "no_matching_dns")


@pytest.mark.parametrize(("a", "ptr"), [
    ("198.51.100.20", "dsl-7.isp.example."),  # same /24: a pool of servers
    ("203.0.113.9", "mx2.sender.example."),  # PTR in the same domain
])
async def test_strict_near_matches_pass(make_plugin, conn, dns, a, ptr):
    plugin = make_plugin("helo", policy="strict", reject="deny")
    dns.add("mx.sender.example", "A", a)
    dns.add(PTR_NAME, "PTR", ptr)
    c = conn()
    assert await plugin.hook_helo(c, "mx.sender.example") is None
    assert c.karma == 0


async def test_strict_perfect_match_earns_karma(make_plugin, conn, dns):
    _good_dns(dns)
    plugin = make_plugin("helo", policy="strict", reject="deny")
    c = conn()
    assert await plugin.hook_helo(c, "mx.sender.example") is None
    assert c.karma == 1


async def test_exempt_clients_are_not_checked(make_plugin, conn):
    plugin = make_plugin("helo", policy="strict", reject="deny")
    assert await plugin.hook_helo(conn(relay_client=True), "yahoo.com") is None
    assert await plugin.hook_helo(conn(whitelisted=True), "yahoo.com") is None
    c = conn()
    c.auth_user = "alice"
    assert await plugin.hook_helo(c, "yahoo.com") is None
    c = conn()
    c.helo_whitelisted = True
    assert await plugin.hook_helo(c, "yahoo.com") is None


async def test_missing_name_is_tolerated_for_two_karma(make_plugin, conn):
    c = conn()
    assert await make_plugin("helo", reject="deny").hook_helo(c, "") is None
    assert c.karma == -2


async def test_repeated_ehlo_is_checked_once(make_plugin, conn, dns):
    plugin = make_plugin("helo", policy="rfc", reject="deny")
    c = conn()
    first = await plugin.hook_helo(c, "mx.sender.example")
    asked = len(dns.asked)
    assert await plugin.hook_helo(c, "MX.sender.example") == first
    assert len(dns.asked) == asked and c.karma == -1


@pytest.mark.parametrize("config", [{"policy": "paranoid"}, {"reject": "yes"}])
async def test_bad_settings(make_plugin, config):
    with pytest.raises(PluginError, match="helo"):
        make_plugin("helo", **config)
