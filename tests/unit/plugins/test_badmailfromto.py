"""badmailfromto: a listed sender cannot reach a listed recipient, who seems not to exist."""

from __future__ import annotations

import pytest

from appliance.smtpd import replies
from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

PAIRS = ["stalker@bad.example alice@example.com", "@pest.example *@example.org"]


@pytest.mark.parametrize(("sender", "recipient"), [
    ("stalker@bad.example", "alice@example.com"),
    ("Stalker@BAD.example", "ALICE@example.com"),
    ("anyone@pest.example", "bob@example.org"),
])
async def test_listed_pair_is_refused_as_unknown_user(make_plugin, conn, txn, sender,
                                                      recipient):
    plugin = make_plugin("badmailfromto", pairs=PAIRS)
    result = await plugin.hook_rcpt(conn(), txn(sender=sender), recipient)
    assert result.verdict is Verdict.DENY
    assert result.reply == replies.USER_UNKNOWN.format(address=recipient)


@pytest.mark.parametrize(("sender", "recipient"), [
    ("stalker@bad.example", "bob@example.com"),  # another recipient
    ("friend@bad.example", "alice@example.com"),  # another sender
    ("anyone@pest.example", "bob@example.com"),
    ("", "alice@example.com"),  # the null sender
])
async def test_other_pairs_pass(make_plugin, conn, txn, sender, recipient):
    plugin = make_plugin("badmailfromto", pairs=PAIRS)
    assert await plugin.hook_rcpt(conn(), txn(sender=sender), recipient) is None


async def test_no_pairs_no_effect(make_plugin, conn, txn):
    plugin = make_plugin("badmailfromto")
    assert await plugin.hook_rcpt(conn(), txn(), "alice@example.com") is None


@pytest.mark.parametrize("pairs", [["only-one@x.example"], ["a@x b@y c@z"],
                                   ["[z-a]@x.example b@y.example"]])
def test_bad_pairs_are_refused(make_plugin, pairs):
    with pytest.raises(PluginError):
        make_plugin("badmailfromto", pairs=pairs)
