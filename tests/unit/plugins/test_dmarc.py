"""dmarc: alignment, policies, pct, the one Authentication-Results header, reporting."""

from __future__ import annotations

import sqlite3

import pytest

from appliance.smtpd.hooks import DkimSignature, SpfCheck
from appliance.smtpd.results import Verdict
from tests.unit.plugins.conftest import message

IP = "198.51.100.7"
REJECT = "v=DMARC1; p=reject; rua=mailto:reports@sender.example"


def mail(txn, from_="Someone <someone@sender.example>", sender="someone@sender.example",
         spf="fail", spf_domain=None, sigs=(), extra=None):
    headers = {"From": from_}
    headers.update(extra or {})
    t = txn(sender=sender, data=message(headers))
    t.spf = SpfCheck(spf, "", spf_domain or sender.rpartition("@")[2])
    t.dkim = [DkimSignature(d, "s1", ok, "pass" if ok else "fail (x)") for d, ok in sigs]
    return t


def header(t) -> str:
    head = t.data.split(b"\r\n\r\n", 1)[0].decode()
    return head


async def test_no_record_is_none(make_plugin, conn, txn):
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn)
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert t.data.startswith(b"Authentication-Results: mail.example.com;\r\n\t"
                             b"dmarc=none header.from=sender.example\r\n")


async def test_spf_aligned_passes(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True, reporting=False)
    c = conn(ip=IP)
    t = mail(txn, spf="pass")
    t.auth_results = ["spf=pass smtp.mailfrom=sender.example"]
    assert await plugin.hook_data_post(c, t) is None
    assert t.data.startswith(
        b"Authentication-Results: mail.example.com;\r\n\tspf=pass smtp.mailfrom=sender.example;"
        b"\r\n\tdmarc=pass (p=reject dis=none) header.from=sender.example\r\n")
    assert c.karma == 1


async def test_dkim_aligned_passes(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, sigs=[("other.example", True), ("mail.sender.example", True)])
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "dmarc=pass" in header(t)


async def test_failing_signature_does_not_align(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, sigs=[("sender.example", False)])
    res = await plugin.hook_data_post(conn(ip=IP), t)
    assert res is not None and res.verdict is Verdict.DENY


async def test_reject(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    c = conn(ip=IP)
    t = mail(txn, spf="pass", spf_domain="bounces.elsewhere.example",
             sender="x@bounces.elsewhere.example")
    res = await plugin.hook_data_post(c, t)
    assert res is not None and res.verdict is Verdict.DENY
    assert res.reply == "550 5.7.1 DMARC policy of sender.example says reject: not aligned"
    assert c.karma == -1


async def test_reject_off_marks_quarantine(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc")  # SME default: DMARCReject disabled
    t = mail(txn)
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "\r\nX-DMARC: quarantine\r\n" in header(t)
    assert "dmarc=fail (p=reject dis=quarantine)" in header(t)


async def test_quarantine(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=quarantine")
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn)
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "X-DMARC: quarantine" in header(t)


async def test_p_none_delivers_unmarked(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=none")
    plugin = make_plugin("dmarc", reject=True)
    c = conn(ip=IP)
    t = mail(txn)
    assert await plugin.hook_data_post(c, t) is None
    assert "X-DMARC" not in header(t)
    assert "dmarc=fail (p=none dis=none)" in header(t)
    assert c.karma == 0


@pytest.mark.parametrize("aspf, expect", [("r", None), ("s", Verdict.DENY)])
async def test_spf_alignment_modes(make_plugin, conn, txn, dns, aspf, expect):
    dns.add("_dmarc.sender.example", "TXT", f"v=DMARC1; p=reject; aspf={aspf}")
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, spf="pass", sender="bounce@mail.sender.example")
    res = await plugin.hook_data_post(conn(ip=IP), t)
    assert (res.verdict if res else None) is expect


@pytest.mark.parametrize("adkim, expect", [("r", None), ("s", Verdict.DENY)])
async def test_dkim_alignment_modes(make_plugin, conn, txn, dns, adkim, expect):
    dns.add("_dmarc.sender.example", "TXT", f"v=DMARC1; p=reject; adkim={adkim}")
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, sigs=[("mail.sender.example", True)])
    res = await plugin.hook_data_post(conn(ip=IP), t)
    assert (res.verdict if res else None) is expect


async def test_subdomain_policy_from_org_domain(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=none; sp=reject")
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, from_="x@news.sender.example", sender="x@elsewhere.example")
    res = await plugin.hook_data_post(conn(ip=IP), t)
    assert res is not None and res.reply.startswith("550 5.7.1 DMARC policy of "
                                                    "news.sender.example ")
    # the organizational domain itself gets p=
    t2 = mail(txn, sender="x@elsewhere.example")
    assert await plugin.hook_data_post(conn(ip=IP), t2) is None


async def test_pct_sampled_out_is_handled_softer(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject; pct=50")
    plugin = make_plugin("dmarc", reject=True)
    plugin.random = lambda: 0.9  # 90 >= 50: not sampled
    t = mail(txn)
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "X-DMARC: quarantine" in header(t)
    plugin.random = lambda: 0.1  # 10 < 50: policy applies
    res = await plugin.hook_data_post(conn(ip=IP), mail(txn))
    assert res is not None and res.verdict is Verdict.DENY


@pytest.mark.parametrize("from_", ["a@sender.example, b@other.example", "nobody", None])
async def test_no_single_from_domain_is_not_judged(make_plugin, conn, txn, dns, from_):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, from_=from_)
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "dmarc=none (no single From domain)" in header(t)


async def test_two_from_headers_different_domains_not_judged(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    t = txn(data=b"From: a@sender.example\r\nFrom: b@other.example\r\n\r\nhi\r\n")
    assert await plugin.hook_data_post(conn(ip=IP), t) is None


@pytest.mark.parametrize("data", [
    b"From: a@sender.example, b@sender.example\r\n\r\nhi\r\n",  # one domain: judged
    b"From: a@sender.example\r\nFrom: b@sender.example\r\n\r\nhi\r\n",
    b"From: \"CEO\" <ceo@sender.example\r\n\r\nhi\r\n",  # unparseable, still judged
    b"From: ceo@sender.example (<<>>\r\n\r\nhi\r\n",
])
async def test_from_tricks_do_not_escape(make_plugin, conn, txn, dns, data):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    res = await plugin.hook_data_post(conn(ip=IP), txn(data=data))
    assert res is not None and res.verdict is Verdict.DENY


async def test_dns_timeout_passes(make_plugin, conn, txn, dns):
    dns.timeouts.add("_dmarc.sender.example")
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn)
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "dmarc=temperror header.from=sender.example" in header(t)


async def test_forged_auth_results_removed(make_plugin, conn, txn):
    plugin = make_plugin("dmarc")
    t = mail(txn, extra={"Authentication-Results": "mail.example.com; dmarc=pass\r\n\tfoo=bar",
                         "X-Other": "kept"})
    t.data = (b"Authentication-Results: mx.other.example; spf=pass\r\n" + t.data)
    await plugin.hook_data_post(conn(ip=IP), t)
    head = header(t)
    assert head.count("Authentication-Results: mail.example.com;") == 1
    assert "foo=bar" not in head and "dmarc=pass" not in head
    assert "Authentication-Results: mx.other.example; spf=pass" in head
    assert "X-Other: kept" in head


async def test_forged_auth_results_removed_even_for_a_whitelisted_sender(make_plugin, conn,
                                                                         txn):
    plugin = make_plugin("dmarc")
    t = mail(txn, extra={"Authentication-Results": "mail.example.com; dmarc=pass"})
    t.whitelisted = True  # an envelope sender anyone can claim
    assert await plugin.hook_data_post(conn(ip=IP), t) is None
    assert "dmarc=pass" not in header(t)
    assert "Authentication-Results" not in header(t)  # not judged: no verdict of ours


async def test_trusted_skipped(make_plugin, conn, txn, dns):
    dns.add("_dmarc.sender.example", "TXT", REJECT)
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn)
    before = t.data
    assert await plugin.hook_data_post(conn(ip=IP, relay_client=True), t) is None
    assert t.data == before and dns.asked == []


async def test_reporting_records_a_row(make_plugin, conn, txn, dns, tmp_path):
    dns.add("_dmarc.sender.example", "TXT", REJECT + "; adkim=s; pct=100")
    plugin = make_plugin("dmarc", reject=True)
    t = mail(txn, spf="pass", sigs=[("sender.example", True)])
    await plugin.hook_data_post(conn(ip=IP), t)
    plugin.close()
    db = sqlite3.connect(tmp_path / "state" / "dmarc.sqlite")
    rows = db.execute("SELECT source_ip, header_from, envelope_from, envelope_to, "
                      "policy_domain, spf_result, spf_aligned, dkim, dkim_aligned, "
                      "disposition, p, adkim, rua FROM messages").fetchall()
    assert rows == [(IP, "sender.example", "sender.example", "example.com",
                     "sender.example", "pass", 1, '[["sender.example", "s1", "pass"]]', 1,
                     "none", "reject", "s", "reports@sender.example")]


async def test_no_row_without_rua_or_reporting(make_plugin, conn, txn, dns, tmp_path):
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=none")
    dns.add("_dmarc.other.example", "TXT", "v=DMARC1; p=none; rua=mailto:r@other.example")
    await make_plugin("dmarc").hook_data_post(conn(ip=IP), mail(txn))
    await make_plugin("dmarc", reporting=False).hook_data_post(
        conn(ip=IP), mail(txn, from_="x@other.example"))
    assert not (tmp_path / "state" / "dmarc.sqlite").exists()


def test_bad_settings(make_plugin):
    from appliance.smtpd.plugins import PluginError

    with pytest.raises(PluginError):
        make_plugin("dmarc", reject="yes")
    with pytest.raises(PluginError):
        make_plugin("dmarc", report_sender="postmaster")


async def test_whole_chain_one_header(make_plugin, conn, txn, dns):
    """spf (MAIL), then dkim and dmarc (data_post): one A-R header with all three parts."""
    dns.add("sender.example", "TXT", f"v=spf1 ip4:{IP} -all")
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject")
    spf, dkim_, dmarc = (make_plugin(n) for n in ("spf", "dkim", "dmarc"))
    c = conn(ip=IP)
    t = txn(data=message())
    assert await spf.hook_mail(c, t, t.sender) is None
    for plugin in (spf, dkim_, dmarc):
        assert await plugin.hook_data_post(c, t) is None
    head = header(t)
    assert head.startswith(
        "Authentication-Results: mail.example.com;\r\n"
        "\tspf=pass smtp.mailfrom=sender.example;\r\n"
        "\tdkim=none;\r\n"
        "\tdmarc=pass (p=reject dis=none) header.from=sender.example\r\n"
        "Received-SPF: pass (mail.example.com: domain of sender.example designates "
        f"{IP} as permitted sender) client-ip={IP};")
    assert head.count("Authentication-Results") == 1


@pytest.mark.parametrize("identifier", ["spf", "dkim"])
async def test_an_aligned_identifier_that_timed_out_defers_never_rejects(
        make_plugin, conn, txn, dns, identifier):
    dns.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject")
    plugin = make_plugin("dmarc", reject=True)
    if identifier == "spf":
        t = mail(txn, spf="temperror")
    else:
        t = mail(txn)
        t.dkim = [DkimSignature("sender.example", "s1", False, "temperror (DNS timeout)")]
    res = await plugin.hook_data_post(conn(ip=IP), t)
    assert res is not None and res.verdict is Verdict.DENYSOFT and res.reply.startswith("451")
    assert "dmarc=temperror header.from=sender.example" in header(t)


@pytest.mark.parametrize("forged", [
    "\r\n\tmail.example.com; dmarc=pass",  # folded before the authserv-id
    "(trust me) mail.example.com; dmarc=pass",  # a comment first
])
async def test_forged_auth_results_in_any_spelling_are_removed(make_plugin, conn, txn, forged):
    plugin = make_plugin("dmarc")
    t = mail(txn, extra={"Authentication-Results": forged})
    await plugin.hook_data_post(conn(ip=IP), t)
    assert "dmarc=pass" not in header(t)
    assert header(t).count("Authentication-Results:") == 1
