"""badmailfrom: a listed sender is noted at MAIL and refused at each RCPT."""

from __future__ import annotations

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

PATTERNS = ["spam@bad.example", "@worse.example", "*@*.spammy.example",
            "!boss@*.spammy.example"]


async def rcpt_result(plugin, c, t, sender):
    assert await plugin.hook_mail(c, t, sender) is None  # never refused at MAIL
    t.sender = sender
    return await plugin.hook_rcpt(c, t, "alice@example.com")


@pytest.mark.parametrize("sender", ["spam@bad.example", "SPAM@Bad.Example", "x@worse.example",
                                    "y@mx.spammy.example"])
async def test_listed_sender_is_refused_at_rcpt(make_plugin, conn, txn, sender):
    plugin = make_plugin("badmailfrom", patterns=PATTERNS)
    c, t = conn(), txn(sender="")
    result = await rcpt_result(plugin, c, t, sender)
    assert result.verdict is Verdict.DENY
    assert result.reply == f"550 5.7.1 Mail from <{sender}> refused"
    assert c.karma == -1
    # every further recipient too
    again = await plugin.hook_rcpt(c, t, "bob@example.com")
    assert again.verdict is Verdict.DENY


@pytest.mark.parametrize("sender", ["ham@bad.example", "x@sub.worse.example",
                                    "boss@mx.spammy.example", ""])
async def test_other_senders_pass(make_plugin, conn, txn, sender):
    plugin = make_plugin("badmailfrom", patterns=PATTERNS)
    c, t = conn(), txn(sender="")
    assert await rcpt_result(plugin, c, t, sender) is None
    assert c.karma == 0


async def test_null_sender_never_matches(make_plugin, conn, txn):
    plugin = make_plugin("badmailfrom", patterns=["*", "@"])
    assert await rcpt_result(plugin, conn(), txn(sender=""), "") is None


async def test_applies_to_our_own_users_too(make_plugin, conn, txn):
    plugin = make_plugin("badmailfrom", patterns=["@bad.example"])
    c = conn(daemon="submission", auth_user="alice")
    result = await rcpt_result(plugin, c, txn(sender=""), "alice@bad.example")
    assert result.verdict is Verdict.DENY


async def test_a_new_transaction_starts_clean(make_plugin, conn, txn):
    plugin = make_plugin("badmailfrom", patterns=["@bad.example"])
    c = conn()
    await rcpt_result(plugin, c, txn(sender=""), "x@bad.example")
    assert await rcpt_result(plugin, c, txn(sender=""), "x@good.example") is None


def test_bad_pattern_is_refused(make_plugin):
    with pytest.raises(PluginError):
        make_plugin("badmailfrom", patterns=["[z-a]*@x.example"])
