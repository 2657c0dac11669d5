"""badrcptto: listed recipients, and internal users, are not reachable from outside."""

from __future__ import annotations

import pytest

from appliance.smtpd import replies
from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict

# The fixture settings have users alice (visible) and bob (visible = "internal"),
# group sales (alice, bob), pseudonym info -> alice, domains example.com and example.org.


@pytest.mark.parametrize("recipient", ["trap@example.com", "TRAP@Example.com",
                                       "x@closed.example.org", "old-1@example.com"])
async def test_listed_recipient_is_refused(make_plugin, conn, txn, recipient):
    plugin = make_plugin("badrcptto",
                         patterns=["trap@example.com", "@closed.example.org", "old-?@*"])
    c = conn()
    result = await plugin.hook_rcpt(c, txn(), recipient)
    assert result.verdict is Verdict.DENY
    assert result.reply == f"550 5.7.1 Mail to <{recipient}> is not accepted"
    assert c.karma == -2


@pytest.mark.parametrize("recipient", ["bob@example.com", "Bob@example.org",
                                       "bob-lists@example.com"])
async def test_internal_user_seems_not_to_exist(make_plugin, conn, txn, recipient):
    plugin = make_plugin("badrcptto")
    result = await plugin.hook_rcpt(conn(), txn(), recipient)
    assert result.verdict is Verdict.DENY
    assert result.reply == replies.USER_UNKNOWN.format(address=recipient)


@pytest.mark.parametrize("recipient", ["alice@example.com", "alice-x@example.org",
                                       "sales@example.com", "info@example.com",
                                       "bob@other.example", "bobby@example.com"])
async def test_others_pass(make_plugin, conn, txn, recipient):
    plugin = make_plugin("badrcptto", patterns=["trap@example.com"])
    assert await plugin.hook_rcpt(conn(), txn(), recipient) is None


async def test_a_pseudonym_that_looks_like_an_extension_passes(make_plugin, base_settings,
                                                               conn, txn):
    settings = dict(base_settings)
    settings["addresses"] = dict(settings["addresses"],
                                 **{"bob-desk@example.com": ["alice@example.com"]})
    plugin = make_plugin("badrcptto", settings=settings)
    assert await plugin.hook_rcpt(conn(), txn(), "bob-desk@example.com") is None
    refused = await plugin.hook_rcpt(conn(), txn(), "bob-other@example.com")
    assert refused.verdict is Verdict.DENY


async def test_trusted_clients_and_senders_are_exempt(make_plugin, conn, txn):
    plugin = make_plugin("badrcptto", patterns=["trap@example.com"])
    for c in (conn(whitelisted=True), conn(relay_client=True)):
        assert await plugin.hook_rcpt(c, txn(), "trap@example.com") is None
        assert await plugin.hook_rcpt(c, txn(), "bob@example.com") is None
    t = txn()
    t.whitelisted = True
    assert await plugin.hook_rcpt(conn(), t, "bob@example.com") is None


def test_bad_pattern_is_refused(make_plugin):
    with pytest.raises(PluginError):
        make_plugin("badrcptto", patterns=["[z-a]@example.com"])
