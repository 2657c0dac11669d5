"""uribl: block lists for the domains of links in the body."""

from __future__ import annotations

import base64
import quopri

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict
from tests.unit.plugins.conftest import message

ZONES = ["multi.surbl.example:8-16-64-128", "black.uribl.example"]


def mime(html: str, plain: str) -> bytes:
    """multipart/alternative: plain as quoted-printable, html as base64."""
    b64 = base64.encodebytes(html.encode()).decode()
    qp = quopri.encodestring(plain.encode()).decode()
    body = (
        "--b1\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        f"{qp}\n"
        "--b1\n"
        "Content-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{b64}\n"
        "--b1--\n"
    )
    return message({"MIME-Version": "1.0",
                    "Content-Type": 'multipart/alternative; boundary="b1"'}, body)


def plain(body: str) -> bytes:
    return message(body=body)


async def run(plugin, conn, txn, data: bytes, **conn_kw):
    c, t = conn(**conn_kw), txn(data=data)
    return c, t, await plugin.hook_data_post(c, t)


async def test_clean_message_passes(make_plugin, conn, txn, dns):
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, t, result = await run(plugin, conn, txn, plain("See https://www.goodsite.com/x\n"))
    assert result is None
    assert ("goodsite.com.multi.surbl.example", "A") in dns.asked
    assert ("goodsite.com.black.uribl.example", "A") in dns.asked


async def test_plain_zone_hit_denies(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    c, _, result = await run(plugin, conn, txn, plain("Buy at http://shop.spamsite.com/now\n"))
    assert result.verdict is Verdict.DENY
    assert result.reply == ("550 5.7.1 Message contains a blocked link: spamsite.com "
                            "(black.uribl.example)")
    assert c.karma == -1


async def test_query_refused_answer_is_not_a_hit(make_plugin, conn, txn, dns, caplog):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.1")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"))
    assert result is None
    assert "refused our query" in caplog.text


async def test_bitmask_hit(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.multi.surbl.example", "A", "127.0.0.64")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"))
    assert result.verdict is Verdict.DENY
    assert "(multi.surbl.example)" in result.reply


async def test_bitmask_miss(make_plugin, conn, txn, dns):
    # bit 2 (a list we did not choose) and 127.0.0.1-style bit 1 do not count
    dns.add("spamsite.com.multi.surbl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"))
    assert result is None


async def test_base64_html_part(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    html = '<p>Hi</p><a href="https://click.spamsite.com/track?id=1">here</a>'
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, mime(html, "nothing here\n"))
    assert result.verdict is Verdict.DENY
    assert "spamsite.com" in result.reply


async def test_bare_domain_in_href_and_html_entities(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    html = '<a href="spamsite&#46;com/offer">offer</a>'
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, mime(html, "nothing\n"))
    assert result.verdict is Verdict.DENY


async def test_quoted_printable_part_with_soft_breaks(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    long_url = "http://www.spamsite.com/" + "a" * 90  # QP folds it with a soft break
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    data = mime("<p>nothing</p>", f"Visit {long_url} = now\n")
    assert b"=\r\n" in data
    _, _, result = await run(plugin, conn, txn, data)
    assert result.verdict is Verdict.DENY


async def test_www_host_without_scheme(make_plugin, conn, txn, dns):
    dns.add("spam.co.uk.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("go to www.spam.co.uk, today\n"))
    assert result.verdict is Verdict.DENY
    assert "spam.co.uk" in result.reply


async def test_ip_link_is_looked_up_reversed(make_plugin, conn, txn, dns):
    dns.add("34.216.184.93.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://93.184.216.34/login\n"))
    assert result.verdict is Verdict.DENY
    assert "93.184.216.34" in result.reply


async def test_add_header_action(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    dns.add("spamsite.com.multi.surbl.example", "A", "127.0.0.16")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES, action="add-header")
    _, t, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"))
    assert result is None
    assert t.data.startswith(b"X-URIBL: spamsite.com listed by multi.surbl.example, "
                             b"black.uribl.example\r\n")


async def test_each_name_looked_up_once_and_max_lookups(make_plugin, conn, txn, dns):
    body = "".join(f"http://a.d{i}.net/ http://b.d{i}.net/\n" for i in range(5))
    plugin = make_plugin("uribl", enabled=True, zones=["black.uribl.example"], max_lookups=3)
    await run(plugin, conn, txn, plain(body))
    assert sorted(n for n, _ in dns.asked) == [
        f"d{i}.net.black.uribl.example" for i in range(3)]


async def test_own_domains_are_not_looked_up(make_plugin, conn, txn, dns, base_settings):
    own = base_settings["primary_domain"]
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    await run(plugin, conn, txn, plain(f"https://www.{own}/webmail\n"))
    assert dns.asked == []


async def test_timeouts_never_give_5xx(make_plugin, conn, txn, dns):
    dns.timeouts.update({"spamsite.com.black.uribl.example",
                         "spamsite.com.multi.surbl.example"})
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"))
    assert result is None


async def test_timeout_in_one_zone_other_still_counts(make_plugin, conn, txn, dns):
    dns.timeouts.add("spamsite.com.multi.surbl.example")
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"))
    assert result.verdict is Verdict.DENY


@pytest.mark.parametrize("kw", [{"auth_user": "alice"}, {"whitelisted": True}])
async def test_authenticated_and_whitelisted_are_skipped(make_plugin, conn, txn, dns, kw):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"), **kw)
    assert result is None
    assert dns.asked == []


async def test_relay_clients_are_checked(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    _, _, result = await run(plugin, conn, txn, plain("http://spamsite.com/\n"),
                             relay_client=True)
    assert result.verdict is Verdict.DENY


async def test_whitelisted_sender_is_skipped(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    c, t = conn(), txn(data=plain("http://spamsite.com/\n"))
    t.whitelisted = True
    assert await plugin.hook_data_post(c, t) is None


async def test_non_domains_and_mailto_are_ignored(make_plugin, conn, txn, dns):
    html = ('<a href="mailto:x@spamsite.com">m</a><a href="/local/page.html">p</a>'
            '<a href="#top">t</a>')
    plugin = make_plugin("uribl", enabled=True, zones=ZONES)
    await run(plugin, conn, txn, mime(html, "see notes.txt and http://localhost/\n"))
    assert dns.asked == []


@pytest.mark.parametrize("config", [{"zones": ["multi.surbl.example:8-x"]},
                                    {"zones": ["multi.surbl.example:999"]},
                                    {"action": "reject"}, {"max_lookups": 0}])
def test_bad_settings_raise(make_plugin, config):
    with pytest.raises(PluginError):
        make_plugin("uribl", **config)


@pytest.mark.parametrize("text", ["(http://spamsite.com)", "http://spamsite.com&x=1",
                                  "<http://user@SpamSite.com:8080/x>", "www.spamsite.com.",
                                  "http://%73pamsite.com/"])
async def test_host_is_cut_at_url_punctuation(make_plugin, conn, txn, dns, text):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    plugin = make_plugin("uribl", enabled=True, zones=["black.uribl.example"])
    _, _, result = await run(plugin, conn, txn, plain(f"see {text} now\n"))
    assert result.verdict is Verdict.DENY


async def test_unknown_charset_is_still_scanned(make_plugin, conn, txn, dns):
    dns.add("spamsite.com.black.uribl.example", "A", "127.0.0.2")
    data = message({"MIME-Version": "1.0", "Content-Type": "text/plain; charset=x-bogus"},
                   "http://spamsite.com/\n")
    plugin = make_plugin("uribl", enabled=True, zones=["black.uribl.example"])
    _, _, result = await run(plugin, conn, txn, data)
    assert result.verdict is Verdict.DENY
