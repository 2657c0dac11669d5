"""The delimiters in effect reach every plugin that splits an address: with a user
mary-ann, "-" starts no extension (mary-ann+news@ is hers, mary-news@ is nobody's)."""

from __future__ import annotations

from appliance.config import parse
from appliance.services.smtpd import settings as smtpd_settings
from appliance.smtpd import replies
from appliance.smtpd.results import DECLINED, Verdict

TOML = """
[system]
hostname = "mail"
domain = "example.com"
admin = "mary"
[users.mary]
visible = "internal"
[users.mary-ann]
"""


async def test_check_goodrcptto_splits_only_at_the_delimiters_in_effect(make_plugin, conn,
                                                                      txn):
    plugin = make_plugin("check_goodrcptto", settings=smtpd_settings(parse(TOML)))
    for recipient in ("mary-ann+news@example.com", "mary+news@example.com"):
        assert await plugin.hook_rcpt(conn(), txn(), recipient) is DECLINED
    result = await plugin.hook_rcpt(conn(), txn(), "mary-news@example.com")
    assert result.reply == replies.USER_UNKNOWN.format(address="mary-news@example.com")


async def test_badrcptto_does_not_take_mary_ann_for_internal_mary(make_plugin, conn, txn):
    plugin = make_plugin("badrcptto", settings=smtpd_settings(parse(TOML)))
    assert await plugin.hook_rcpt(conn(), txn(), "mary-ann+news@example.com") is None
    result = await plugin.hook_rcpt(conn(), txn(), "mary+news@example.com")
    assert result.verdict is Verdict.DENY  # mary is internal


async def test_sender_login_does_not_give_mary_the_extensions_of_mary_ann(make_plugin,
                                                                         conn, txn):
    plugin = make_plugin("sender_login", settings=smtpd_settings(parse(TOML)))
    mary = conn(daemon="submission", auth_user="mary")
    result = await plugin.hook_mail(mary, txn(), "mary-ann+news@example.com")
    assert result.verdict is Verdict.DENY
    assert await plugin.hook_mail(mary, txn(), "mary+news@example.com") is None
    mary_ann = conn(daemon="submission", auth_user="mary-ann")
    assert await plugin.hook_mail(mary_ann, txn(), "mary-ann+news@example.com") is None
