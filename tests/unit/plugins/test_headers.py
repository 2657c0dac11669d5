"""headers: required headers, singular headers, and the Date's distance from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from appliance.smtpd.plugins import PluginError
from appliance.smtpd.results import Verdict
from tests.unit.plugins.conftest import message


def date(days: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(days=days))


async def test_a_proper_message_passes(make_plugin, conn, txn):
    plugin = make_plugin("headers", maximum_date_offset=2)
    c = conn()
    assert await plugin.hook_data_post(c, txn(data=message({"Date": date(0)}))) is None
    assert c.karma == 0


@pytest.mark.parametrize("name", ["From", "Date"])
async def test_missing_required_header_is_refused(make_plugin, conn, txn, name):
    plugin = make_plugin("headers")
    c = conn()
    result = await plugin.hook_data_post(c, txn(data=message({name: None})))
    assert result.verdict is Verdict.DENY
    assert result.reply == f"550 5.6.0 Message has no {name} header"
    assert c.karma == -1


async def test_empty_required_header_counts_as_missing(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    result = await plugin.hook_data_post(conn(), txn(data=message({"From": " "})))
    assert result.reply == "550 5.6.0 Message has no From header"


async def test_required_list_is_configurable(make_plugin, conn, txn):
    plugin = make_plugin("headers", required=["From", "Message-ID"])
    ok = await plugin.hook_data_post(conn(), txn(data=message({"Date": None})))
    assert ok is None
    result = await plugin.hook_data_post(conn(), txn(data=message({"Message-ID": None})))
    assert result.reply == "550 5.6.0 Message has no Message-ID header"


async def test_empty_message_is_refused(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    result = await plugin.hook_data_post(conn(), txn(data=b""))
    assert result.verdict is Verdict.DENY
    assert result.reply.startswith("550 5.6.0 Message has no From")


async def test_duplicate_singular_header_is_refused(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    data = b"Subject: again\r\n" + message()
    result = await plugin.hook_data_post(conn(), txn(data=data))
    assert result.verdict is Verdict.DENY
    assert result.reply == "554 5.6.0 Too many Subject headers"


async def test_repeated_trace_headers_are_fine(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    data = b"Received: from a\r\nReceived: from b\r\n" + message()
    assert await plugin.hook_data_post(conn(), txn(data=data)) is None


async def test_header_names_in_the_body_do_not_count(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    data = message(body="From: quoted\nSubject: quoted\n")
    assert await plugin.hook_data_post(conn(), txn(data=data)) is None


@pytest.mark.parametrize(("days", "reply"), [
    (3, "554 5.6.0 The Date header is too far in the future"),
    (-3, "554 5.6.0 The Date header is too far in the past"),
])
async def test_date_too_far_away_is_refused(make_plugin, conn, txn, days, reply):
    plugin = make_plugin("headers", maximum_date_offset=2)
    result = await plugin.hook_data_post(conn(), txn(data=message({"Date": date(days)})))
    assert result.verdict is Verdict.DENY
    assert result.reply == reply


async def test_date_within_the_offset_passes(make_plugin, conn, txn):
    plugin = make_plugin("headers", maximum_date_offset=2)
    for days in (1.5, -1.5):
        assert await plugin.hook_data_post(conn(), txn(data=message({"Date": date(days)}))) \
            is None


async def test_dates_are_not_checked_with_offset_zero(make_plugin, conn, txn):
    plugin = make_plugin("headers", maximum_date_offset=0)
    for value in (date(-400), date(400), "yesterday-ish"):
        assert await plugin.hook_data_post(conn(), txn(data=message({"Date": value}))) is None


async def test_unparseable_date_is_refused_when_checked(make_plugin, conn, txn):
    plugin = make_plugin("headers", maximum_date_offset=2)
    result = await plugin.hook_data_post(conn(), txn(data=message({"Date": "yesterday-ish"})))
    assert result.verdict is Verdict.DENY
    assert result.reply == "554 5.6.0 The Date header is not a valid date"


async def test_our_users_are_checked_too(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    c = conn(daemon="submission", auth_user="alice")
    result = await plugin.hook_data_post(c, txn(data=message({"Date": None})))
    assert result.verdict is Verdict.DENY


async def test_whitelisted_clients_and_senders_are_exempt(make_plugin, conn, txn):
    plugin = make_plugin("headers")
    assert await plugin.hook_data_post(conn(whitelisted=True),
                                       txn(data=message({"From": None}))) is None
    t = txn(data=message({"From": None}))
    t.whitelisted = True
    assert await plugin.hook_data_post(conn(), t) is None


@pytest.mark.parametrize("config", [{"required": ["From:"]}, {"required": ["Two words"]},
                                    {"required": "From"}, {"maximum_date_offset": -1}])
def test_bad_settings_are_refused(make_plugin, config):
    with pytest.raises(PluginError):
        make_plugin("headers", **config)
