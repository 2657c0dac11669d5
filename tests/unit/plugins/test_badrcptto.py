"""badrcptto: listed recipients, internal users and internal lists are not reachable
from outside."""

from __future__ import annotations

import pytest

from appliance.config import parse
from appliance.services.smtpd import settings as smtpd_settings
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
                                       "info@example.com", "postmaster@example.com",
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


async def test_relay_clients_and_our_users_may_write_to_every_address(make_plugin, conn,
                                                                       txn):
    plugin = make_plugin("badrcptto", patterns=["trap@example.com"])
    for c in (conn(relay_client=True), conn(auth_user="alice")):
        for recipient in ("trap@example.com", "bob@example.com", "sales@example.com",
                          "everyone@example.com"):
            assert await plugin.hook_rcpt(c, txn(), recipient) is None


async def test_whitelisted_hosts_and_senders_skip_the_patterns_not_internal_addresses(
        make_plugin, conn, txn):
    # a sender whitelist entry is a claim in MAIL FROM: it must not open internal lists
    plugin = make_plugin("badrcptto", patterns=["trap@example.com"])
    t = txn()
    t.whitelisted = True
    for c, tx in ((conn(whitelisted=True), txn()), (conn(), t)):
        assert await plugin.hook_rcpt(c, tx, "trap@example.com") is None
        refused = await plugin.hook_rcpt(c, tx, "everyone@example.com")
        assert refused.reply == replies.INTERNAL_ONLY.format(address="everyone@example.com")
        refused = await plugin.hook_rcpt(c, tx, "bob@example.com")
        assert refused.reply == replies.USER_UNKNOWN.format(address="bob@example.com")


def test_bad_pattern_is_refused(make_plugin):
    with pytest.raises(PluginError):
        make_plugin("badrcptto", patterns=["[z-a]@example.com"])


# group sales and everyone@ are internal by default; pseudonyms follow their account
@pytest.mark.parametrize("recipient", ["sales@example.com", "Sales-news@example.org",
                                       "everyone@example.com", "everyone-x@example.org"])
async def test_internal_lists_are_refused_to_the_internet(make_plugin, conn, txn, recipient):
    plugin = make_plugin("badrcptto")
    c = conn()
    result = await plugin.hook_rcpt(c, txn(), recipient)
    assert result.verdict is Verdict.DENY
    assert result.reply == replies.INTERNAL_ONLY.format(address=recipient)
    assert c.karma == -2


VISIBILITY = """
[system]
hostname = "mail"
domain = "example.com"
admin = "alice"
[users.alice]
[users.bob]
visible = "internal"
[groups.staff]
members = ["alice"]
[groups.press]
members = ["alice"]
visible = "public"
[pseudonyms."team"]
account = "staff"
[pseudonyms."headlines"]
account = "staff"
visible = "public"
[pseudonyms."robert"]
account = "bob"
[pseudonyms."contact@example.com"]
account = "alice"
visible = "internal"
"""


@pytest.mark.parametrize(("extra", "recipient", "reply"), [
    ("", "staff@example.com", replies.INTERNAL_ONLY),
    ("", "team@example.com", replies.INTERNAL_ONLY),  # follows its internal group
    ("", "headlines@example.com", None),  # made public on its own
    ("", "press@example.com", None),  # a public group
    ("", "robert@example.com", replies.USER_UNKNOWN),  # follows its internal user
    ("", "contact@example.com", replies.USER_UNKNOWN),  # internal on its own
    ("", "everyone@example.com", replies.INTERNAL_ONLY),
    ('[delivery]\neveryone_visible = "public"\n', "everyone@example.com", None),
    ('[delivery]\nunknown_user = "staff"\n', "nobody-here@example.com",
     replies.INTERNAL_ONLY),  # the catch-all of an internal group
])
async def test_visible_of_groups_pseudonyms_and_everyone(make_plugin, conn, txn, extra,
                                                         recipient, reply):
    settings = smtpd_settings(parse(VISIBILITY + extra))
    result = await make_plugin("badrcptto", settings=settings).hook_rcpt(
        conn(), txn(), recipient)
    if reply is None:
        assert result is None
    else:
        assert result.reply == reply.format(address=recipient)
