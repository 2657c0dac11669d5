"""dnsbl: client address block lists."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

IP = "198.51.100.7"
REV = "7.100.51.198"
BARRACUDA = ("b.barracudacentral.org:Blocked - see "
             "<http://bbl.barracudacentral.com/q.cgi?ip=%IP%>")


async def test_not_listed_passes(make_plugin, conn, dns):
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example", "bl.example"])
    c = conn(ip=IP)
    assert await plugin.hook_connect(c) is None
    assert (f"{REV}.zen.example", "A") in dns.asked
    assert (f"{REV}.bl.example", "A") in dns.asked
    assert "dnsbl" not in c.notes


async def test_disabled_does_nothing(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=False, zones=["zen.example"])
    assert await plugin.hook_connect(conn(ip=IP)) is None
    assert dns.asked == []


async def test_txt_zone_hit_uses_txt_reason(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.4")
    dns.add(f"{REV}.zen.example", "TXT", "Listed; see https://zen.example/query/ip/" + IP)
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    c = conn(ip=IP)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.DENY
    assert result.reply == f"550 5.7.1 Listed; see https://zen.example/query/ip/{IP}"
    assert c.notes["dnsbl"] == "zen.example"
    assert c.karma == -1


async def test_txt_zone_without_txt_gets_default_reason(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    result = await plugin.hook_connect(conn(ip=IP))
    assert result.reply == "550 5.7.1 Blocked by zen.example"


async def test_a_record_zone_message_with_ip_and_colons(make_plugin, conn, dns):
    dns.add(f"{REV}.b.barracudacentral.org", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=[BARRACUDA], reject="deny")
    c = conn(ip=IP)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.DENY
    assert result.reply == ("550 5.7.1 Blocked - see "
                            f"<http://bbl.barracudacentral.com/q.cgi?ip={IP}>")
    assert c.notes["dnsbl"] == "b.barracudacentral.org"
    # an A-record list is not asked for TXT
    assert (f"{REV}.b.barracudacentral.org", "TXT") not in dns.asked


async def test_default_reject_is_naughty(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"])
    c = conn(ip=IP)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.NAUGHTY
    assert result.reply.startswith("550 5.7.1 ")
    assert c.karma == 0  # the pipeline takes the point for NAUGHTY


async def test_reject_off_only_logs(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="off")
    c = conn(ip=IP)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.DECLINED
    assert c.notes["dnsbl"] == "zen.example"
    assert c.karma == -1


async def test_answers_outside_127_are_ignored(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "203.0.113.80")  # an NXDOMAIN-hijacking resolver
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    assert await plugin.hook_connect(conn(ip=IP)) is None


async def test_query_refused_code_is_not_a_listing(make_plugin, conn, dns, caplog):
    dns.add(f"{REV}.zen.example", "A", "127.255.255.254")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    assert await plugin.hook_connect(conn(ip=IP)) is None
    assert "refused our query" in caplog.text


async def test_allow_list_is_never_looked_up(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny",
                         allow=["198.51.100.0/24"])
    assert await plugin.hook_connect(conn(ip=IP)) is None
    assert dns.asked == []


@pytest.mark.parametrize("kw", [{"auth_user": "alice"}, {"relay_client": True},
                                {"whitelisted": True}])
async def test_trusted_clients_are_skipped(make_plugin, conn, dns, kw):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    assert await plugin.hook_connect(conn(ip=IP, **kw)) is None
    assert dns.asked == []


async def test_local_networks_are_skipped(make_plugin, conn, dns):
    dns.add("1.0.0.127.zen.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    assert await plugin.hook_connect(conn(ip="127.0.0.1")) is None
    assert dns.asked == []


async def test_ipv6_is_looked_up_by_nibbles(make_plugin, conn, dns):
    ip = "2001:db8::1"
    nibbles = "1.0.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2"
    dns.add(f"{nibbles}.zen.example", "A", "127.0.0.3")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    result = await plugin.hook_connect(conn(ip=ip))
    assert result.verdict is Verdict.DENY


async def test_timeout_skips_that_zone_only(make_plugin, conn, dns):
    dns.timeouts.add(f"{REV}.zen.example")
    dns.add(f"{REV}.bl.example", "A", "127.0.0.2")
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example", "bl.example"],
                         reject="deny")
    c = conn(ip=IP)
    result = await plugin.hook_connect(c)
    assert result.verdict is Verdict.DENY
    assert c.notes["dnsbl"] == "bl.example"


async def test_all_zones_timing_out_passes(make_plugin, conn, dns):
    dns.timeouts.update({f"{REV}.zen.example", f"{REV}.bl.example"})
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example", "bl.example"],
                         reject="deny")
    assert await plugin.hook_connect(conn(ip=IP)) is None


async def test_txt_timeout_after_a_hit_still_refuses_with_default(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")

    real = dns.query

    async def query(name, rdtype):
        if rdtype == "TXT":
            dns.timeouts.add(name.lower())
        return await real(name, rdtype)

    dns.query = query
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    result = await plugin.hook_connect(conn(ip=IP))
    assert result.reply == "550 5.7.1 Blocked by zen.example"


async def test_txt_reason_is_made_one_line(make_plugin, conn, dns):
    dns.add(f"{REV}.zen.example", "A", "127.0.0.2")
    dns.add(f"{REV}.zen.example", "TXT", '"bad\\013\\010250 ok"')
    plugin = make_plugin("dnsbl", enabled=True, zones=["zen.example"], reject="deny")
    result = await plugin.hook_connect(conn(ip=IP))
    assert "\n" not in result.reply and "\r" not in result.reply
    assert result.reply == "550 5.7.1 bad 250 ok"


@pytest.mark.parametrize("config", [{"reject": "maybe"}, {"allow": ["not-a-net"]},
                                    {"zones": ["-bad"]}, {"zones": "zen.example"}])
def test_bad_settings_raise(make_plugin, config):
    with pytest.raises(PluginError):
        make_plugin("dnsbl", **config)
