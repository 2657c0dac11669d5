"""spf: results, Received-SPF, reject_policy 0-4, the DMARC exemption, DNS timeouts."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

IP = "198.51.100.7"
RECORDS = {
    "pass": f"v=spf1 ip4:{IP} -all",
    "fail": "v=spf1 ip4:192.0.2.1 -all",
    "softfail": "v=spf1 ip4:192.0.2.1 ~all",
    "neutral": "v=spf1 ?all",
    "permerror": "v=spf1 bogus:x -all",
    "none": None,
}


def publish(dns, result: str, domain: str = "sender.example") -> None:
    if RECORDS[result] is not None:
        dns.add(domain, "TXT", RECORDS[result])


@pytest.mark.parametrize("result", list(RECORDS))
async def test_result_note_and_header(make_plugin, conn, txn, dns, result):
    publish(dns, result)
    plugin = make_plugin("spf")
    c, t = conn(ip=IP), txn()
    assert await plugin.hook_mail(c, t, t.sender) is None  # policy 0 never refuses
    assert t.spf[0] == result
    assert t.spf[2] == "sender.example"
    assert t.auth_results == [f"spf={result} smtp.mailfrom=sender.example"]
    t.data = b"Subject: x\r\n\r\nbody\r\n"
    await plugin.hook_data_post(c, t)
    first = t.data.split(b"\r\n", 1)[0].decode()
    assert first.startswith(f"Received-SPF: {result} (mail.example.com: ")
    assert f"client-ip={IP};" in first
    assert 'envelope-from="someone@sender.example";' in first  # quoted: has an @
    assert "helo=mx.sender.example;" in first
    assert c.karma == {"pass": 1, "fail": -1, "softfail": -1}.get(result, 0)


async def test_pass_header_wording(make_plugin, conn, txn, dns):
    publish(dns, "pass")
    plugin = make_plugin("spf")
    c, t = conn(ip=IP), txn()
    await plugin.hook_mail(c, t, t.sender)
    assert (f"pass (mail.example.com: domain of sender.example designates {IP} as "
            "permitted sender)") in t.notes["spf_header"]


# result -> the lowest policy that refuses it, and the reply
REFUSAL = {
    "fail": (1, "550 5.7.23 SPF: sender.example does not designate 198.51.100.7 as "
                "permitted sender"),
    "softfail": (2, "550 5.7.23 "),
    "neutral": (3, "550 5.7.23 "),
    "permerror": (4, "550 5.7.24 "),
    "none": (4, "550 5.7.23 "),
    "pass": (99, ""),
}


@pytest.mark.parametrize("policy", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("result", list(REFUSAL))
async def test_reject_policy(make_plugin, conn, txn, dns, policy, result):
    publish(dns, result)
    plugin = make_plugin("spf", reject_policy=policy)
    c, t = conn(ip=IP), txn()
    res = await plugin.hook_mail(c, t, t.sender)
    lowest, reply = REFUSAL[result]
    if policy >= lowest:
        assert res is not None and res.verdict is Verdict.DENY
        assert res.reply.startswith(reply)
    else:
        assert res is None


@pytest.mark.parametrize("sender, dmarc_at", [
    ("x@sender.example", "_dmarc.sender.example"),  # the domain's own record
    ("x@mail.sender.example", "_dmarc.sender.example"),  # the organizational domain's
])
async def test_dmarc_record_means_no_spf_refusal(make_plugin, conn, txn, dns, sender,
                                                 dmarc_at):
    # even p=none: the dmarc plugin decides, SPF alone never refuses
    publish(dns, "fail", sender.partition("@")[2])
    dns.add(dmarc_at, "TXT", "v=DMARC1; p=none")
    plugin = make_plugin("spf", reject_policy=4)
    c, t = conn(ip=IP), txn(sender=sender)
    assert await plugin.hook_mail(c, t, t.sender) is None
    assert t.spf[0] == "fail"


async def test_non_dmarc_txt_at_dmarc_name_is_no_policy(make_plugin, conn, txn, dns):
    publish(dns, "fail")
    dns.add("_dmarc.sender.example", "TXT", "some verification token")
    plugin = make_plugin("spf", reject_policy=1)
    c, t = conn(ip=IP), txn()
    res = await plugin.hook_mail(c, t, t.sender)
    assert res is not None and res.reply.startswith("550 5.7.23")


@pytest.mark.parametrize("policy", [0, 1, 2, 3, 4])
async def test_spf_timeout_never_5xx(make_plugin, conn, txn, dns, policy):
    dns.timeouts.add("sender.example")
    plugin = make_plugin("spf", reject_policy=policy)
    c, t = conn(ip=IP), txn()
    res = await plugin.hook_mail(c, t, t.sender)
    assert t.spf[0] == "temperror"
    if policy == 4:
        assert res is not None and res.verdict is Verdict.DENYSOFT
        assert res.reply.startswith("451 4.7.24 ")
    else:
        assert res is None


async def test_dmarc_lookup_timeout_does_not_refuse(make_plugin, conn, txn, dns):
    publish(dns, "fail")
    dns.timeouts.add("_dmarc.sender.example")
    plugin = make_plugin("spf", reject_policy=1)
    c, t = conn(ip=IP), txn()
    assert await plugin.hook_mail(c, t, t.sender) is None


async def test_null_sender_checks_helo(make_plugin, conn, txn, dns):
    dns.add("mx.sender.example", "TXT", "v=spf1 a -all")
    dns.add("mx.sender.example", "A", IP)
    plugin = make_plugin("spf", reject_policy=1)
    c, t = conn(ip=IP), txn(sender="")
    assert await plugin.hook_mail(c, t, "") is None
    assert t.spf == ("pass", t.spf[1], "mx.sender.example")
    assert "identity=helo" in t.notes["spf_header"]
    assert t.auth_results == ["spf=pass smtp.helo=mx.sender.example"]


async def test_null_sender_bad_helo_fails_when_policy_says(make_plugin, conn, txn, dns):
    dns.add("mx.sender.example", "TXT", "v=spf1 -all")
    plugin = make_plugin("spf", reject_policy=1)
    c, t = conn(ip=IP), txn(sender="")
    res = await plugin.hook_mail(c, t, "")
    assert res is not None and res.reply.startswith("550 5.7.23 SPF: mx.sender.example ")


async def test_ip_literal_helo_null_sender_is_none(make_plugin, conn, txn, dns):
    plugin = make_plugin("spf", reject_policy=3)
    c, t = conn(ip=IP, helo="[198.51.100.7]"), txn(sender="")
    assert await plugin.hook_mail(c, t, "") is None
    assert t.spf[0] == "none"
    assert dns.asked == []


async def test_mx_and_include(make_plugin, conn, txn, dns):
    dns.add("sender.example", "TXT", "v=spf1 include:_spf.provider.example -all")
    dns.add("_spf.provider.example", "TXT", "v=spf1 mx:provider.example -all")
    dns.add("provider.example", "MX", "10 out.provider.example.")
    dns.add("out.provider.example", "A", IP)
    plugin = make_plugin("spf", reject_policy=1)
    c, t = conn(ip=IP), txn()
    assert await plugin.hook_mail(c, t, t.sender) is None
    assert t.spf[0] == "pass"


async def test_trusted_and_whitelisted_skipped(make_plugin, conn, txn, dns):
    publish(dns, "fail")
    plugin = make_plugin("spf", reject_policy=1)
    c, t = conn(ip=IP, relay_client=True), txn()
    assert await plugin.hook_mail(c, t, t.sender) is None
    t2 = txn()
    t2.whitelisted = True
    assert await plugin.hook_mail(conn(ip=IP), t2, t2.sender) is None
    assert t.spf is None and t2.spf is None
    assert dns.asked == []


async def test_no_header_without_check(make_plugin, conn, txn):
    plugin = make_plugin("spf")
    t = txn(data=b"Subject: x\r\n\r\nbody\r\n")
    await plugin.hook_data_post(conn(), t)
    assert t.data == b"Subject: x\r\n\r\nbody\r\n"


@pytest.mark.parametrize("bad", [5, -1, "1", True])
def test_bad_policy(make_plugin, bad):
    with pytest.raises(PluginError):
        make_plugin("spf", reject_policy=bad)


async def test_a_repeat_sender_is_answered_from_the_recent_verdicts(make_plugin, conn, txn,
                                                                    dns):
    publish(dns, "pass")
    plugin = make_plugin("spf")
    for _ in range(3):
        c, t = conn(ip=IP), txn()
        await plugin.hook_mail(c, t, t.sender)
        assert t.spf[0] == "pass"
    assert dns.asked.count(("sender.example", "TXT")) == 1
    c, t = conn(ip="203.0.113.200"), txn()  # another client: asked again
    await plugin.hook_mail(c, t, t.sender)
    assert dns.asked.count(("sender.example", "TXT")) == 2


async def test_a_temporary_error_is_not_remembered(make_plugin, conn, txn, dns):
    dns.timeouts.add("sender.example")
    plugin = make_plugin("spf")
    for _ in range(2):
        c, t = conn(ip=IP), txn()
        await plugin.hook_mail(c, t, t.sender)
        assert t.spf[0] == "temperror"
    assert dns.asked.count(("sender.example", "TXT")) >= 2


async def test_a_bounce_from_an_address_literal_helo_is_not_refused_by_policy_4(
        make_plugin, conn, txn, dns):
    plugin = make_plugin("spf", reject_policy=4)  # 4 refuses "none" results too
    c, t = conn(ip=IP, helo="[198.51.100.7]"), txn(sender="")
    assert await plugin.hook_mail(c, t, "") is None
    assert t.spf[0] == "none"
    assert not [q for q in dns.asked if q[0].startswith("_dmarc.")]


@pytest.mark.parametrize(("ip", "result"), [
    ("2001:db8:100::1", "pass"), ("2001:db8:100::ffff", "pass"), ("2001:db8:200::1", "fail"),
    ("198.51.100.7", "fail"),
])
async def test_an_ipv6_client_is_judged_by_ip6_mechanisms(make_plugin, conn, txn, dns, ip,
                                                          result):
    dns.add("sender.example", "TXT", "v=spf1 ip6:2001:db8:100::/64 -all")
    plugin = make_plugin("spf")
    c, t = conn(ip=ip), txn()
    await plugin.hook_mail(c, t, t.sender)
    assert t.spf[0] == result
    t.data = b"Subject: x\r\n\r\nbody\r\n"
    await plugin.hook_data_post(c, t)
    assert f"client-ip={ip};" in t.data.split(b"\r\n", 1)[0].decode()
