"""bogus_bounce: a null-sender message has one recipient and no Return-Path."""

from __future__ import annotations

from appliance.smtpd import replies
from appliance.smtpd.results import Verdict
from tests.unit.plugins.conftest import message


async def test_ordinary_mail_passes(make_plugin, conn, txn):
    plugin = make_plugin("bogus_bounce")
    t = txn(recipients=("alice@example.com", "bob@example.com"), data=message())
    assert await plugin.hook_data_post(conn(), t) is None


async def test_bounce_to_one_recipient_passes(make_plugin, conn, txn):
    plugin = make_plugin("bogus_bounce")
    t = txn(sender="", data=message({"Return-Path": "<>"}))
    assert await plugin.hook_data_post(conn(), t) is None


async def test_bounce_to_two_recipients_is_refused(make_plugin, conn, txn):
    plugin = make_plugin("bogus_bounce")
    t = txn(sender="", recipients=("alice@example.com", "bob@example.com"), data=message())
    result = await plugin.hook_data_post(conn(), t)
    assert result.verdict is Verdict.DENY
    assert result.reply == replies.BOUNCE_ONE_RECIPIENT
    assert result.reply.startswith("550 5.7.0 ")


async def test_bounce_with_a_return_path_is_refused(make_plugin, conn, txn):
    plugin = make_plugin("bogus_bounce")
    t = txn(sender="", data=message({"Return-Path": "<spammer@sender.example>"}))
    result = await plugin.hook_data_post(conn(), t)
    assert result.verdict is Verdict.DENY
    assert result.reply == replies.BOUNCE_RETURN_PATH


async def test_return_path_in_the_body_does_not_count(make_plugin, conn, txn):
    plugin = make_plugin("bogus_bounce")
    t = txn(sender="", data=message(body="Return-Path: <x@sender.example>\n"))
    assert await plugin.hook_data_post(conn(), t) is None


async def test_authenticated_users_are_not_checked(make_plugin, conn, txn):
    plugin = make_plugin("bogus_bounce")
    t = txn(sender="", recipients=("a@other.example", "b@other.example"), data=message())
    assert await plugin.hook_data_post(conn(daemon="submission", auth_user="alice"), t) is None
