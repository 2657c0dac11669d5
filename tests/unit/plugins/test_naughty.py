"""naughty: refuses marked connections at reject_at, or at the first stage after it."""

from __future__ import annotations

import pytest

from appliance.smtpd.pipeline import Pipeline
from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

MARK = ("550 5.7.1 Listed at zen.example", "dnsbl")


def _marked(conn, mark=MARK, **kw):
    c = conn(**kw)
    c.naughty = mark
    return c


async def _stages(plugin, c, t):
    return {
        "mail": await plugin.hook_mail(c, t, t.sender),
        "rcpt": await plugin.hook_rcpt(c, t, "alice@example.com"),
        "data": await plugin.hook_data(c, t),
        "data_post": await plugin.hook_data_post(c, t),
        "queue": await plugin.hook_queue(c, t),
    }


async def test_unmarked_connection_passes_every_stage(make_plugin, conn, txn):
    results = await _stages(make_plugin("naughty"), conn(), txn())
    assert set(results.values()) == {None}


@pytest.mark.parametrize("reject_at", ["mail", "rcpt", "data"])
async def test_refused_from_reject_at_on(make_plugin, conn, txn, reject_at):
    results = await _stages(make_plugin("naughty", reject_at=reject_at), _marked(conn), txn())
    order = list(results)
    for stage, result in results.items():
        if order.index(stage) < order.index(reject_at):
            assert result is None, stage
        else:
            assert result.verdict is Verdict.DENY, stage
            assert result.reply == MARK[0]


async def test_temporary_mark_is_deferred(make_plugin, conn, txn):
    c = _marked(conn, ("451 4.7.1 Try later", "karma"))
    result = await make_plugin("naughty").hook_mail(c, txn(), "x@y.example")
    assert result.verdict is Verdict.DENYSOFT
    assert result.reply == "451 4.7.1 Try later"


async def test_late_mark_is_refused_at_the_next_stage(make_plugin, conn, txn):
    plugin = make_plugin("naughty", reject_at="mail")
    c, t = conn(), txn()
    assert await plugin.hook_mail(c, t, t.sender) is None
    c.naughty = MARK  # say, a data_post plugin after naughty in the chain marked it
    result = await plugin.hook_queue(c, t)
    assert result.verdict is Verdict.DENY


async def test_whitelisted_sender_and_trusted_client_pass(make_plugin, conn, txn):
    plugin = make_plugin("naughty")
    t = txn()
    t.whitelisted = True
    assert await plugin.hook_mail(_marked(conn), t, t.sender) is None
    assert await plugin.hook_mail(_marked(conn, relay_client=True), txn(), "a@b.example") is None


async def test_empty_mark_reply_gets_a_default(make_plugin, conn, txn):
    result = await make_plugin("naughty").hook_mail(_marked(conn, ("", "x")), txn(), "")
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("550 5.7.1 ")


async def test_bad_reject_at(make_plugin):
    with pytest.raises(PluginError, match="reject_at"):
        make_plugin("naughty", reject_at="connect")


async def test_pipeline_helo_mark_refused_at_mail(make_plugin, conn, txn):
    chain = Pipeline([make_plugin("helo", reject="naughty"), make_plugin("naughty")])
    c = conn()
    helo = await chain.run("helo", c, "aol.com")
    assert helo.verdict is Verdict.DECLINED  # marked, the dialogue goes on
    assert c.naughty is not None and c.naughty[1] == "helo"
    mail = await chain.run("mail", c, txn(), "someone@sender.example")
    assert mail.verdict is Verdict.DENY
    assert mail.plugin == "naughty"
    assert "is_in_badhelo" in mail.reply
