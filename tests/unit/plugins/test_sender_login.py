"""sender_login: a logged-in user sends only from addresses that deliver to them."""

from __future__ import annotations

import pytest

from appliance.config import parse
from appliance.services.smtpd import settings as smtpd_settings
from appliance.smtpd import replies
from appliance.smtpd.results import Verdict

ACCOUNTS = """
[system]
hostname = "mail"
domain = "example.com"
admin = "alice"
[domains."example.org"]
[users.alice]
[users.bob]
[users.carol]
send_as = ["@partner.example", "ceo@bigbank.test"]
[groups.sales]
members = ["alice", "bob"]
exclude_users = ["bob"]
[pseudonyms."info"]
account = "alice"
[pseudonyms."desk@example.org"]
account = "bob"
"""


@pytest.fixture
def plugin(make_plugin):
    def make(extra: str = "", **config):
        return make_plugin("sender_login", settings=smtpd_settings(parse(ACCOUNTS + extra)),
                           **config)
    return make


@pytest.mark.parametrize("sender", [
    "alice@example.com", "ALICE@Example.org",  # her own, at every mailbox domain
    "alice-lists@example.com", "alice+news@example.org",  # with an extension
    "info@example.com", "info@example.org",  # her pseudonym
    "sales@example.com",  # a group whose mail she gets
    "postmaster@example.com",  # she is system.admin: postmaster@'s mail is hers
    "",  # the null sender
])
async def test_alice_may_send_as_what_delivers_to_her(plugin, conn, txn, sender):
    alice = conn(daemon="submission", auth_user="alice")
    assert await plugin().hook_mail(alice, txn(sender=sender), sender) is None


@pytest.mark.parametrize("sender", [
    "bob@example.com", "desk@example.org",  # another user, another user's pseudonym
    "ceo@bigbank.test", "alice@elsewhere.example",  # not ours at all
    "desk@example.com",  # the pseudonym is desk@example.org only
    "carol@example.org",
])
async def test_alice_may_not_send_as_anyone_else(plugin, conn, txn, sender):
    alice = conn(daemon="submission", auth_user="alice")
    result = await plugin().hook_mail(alice, txn(sender=sender), sender)
    assert result.verdict is Verdict.DENY
    assert result.reply == replies.SENDER_NOT_OWNED.format(address=sender, user="alice")
    assert result.reply.startswith("553 5.7.1 ")


async def test_an_excluded_member_may_not_send_as_the_group(plugin, conn, txn):
    bob = conn(daemon="submission", auth_user="bob")
    result = await plugin().hook_mail(bob, txn(), "sales@example.com")
    assert result.verdict is Verdict.DENY  # bob gets none of sales' mail
    assert await plugin().hook_mail(bob, txn(), "desk@example.org") is None


async def test_send_as_per_user_and_for_everyone(plugin, conn, txn):
    carol = conn(daemon="submission", auth_user="carol")
    alice = conn(daemon="submission", auth_user="alice")
    p = plugin()
    assert await p.hook_mail(carol, txn(), "anyone@partner.example") is None
    assert await p.hook_mail(carol, txn(), "ceo@bigbank.test") is None
    assert (await p.hook_mail(alice, txn(), "ceo@bigbank.test")).verdict is Verdict.DENY
    everyone = plugin(send_as=["noreply@example.com", "*@lists.example"])
    assert await everyone.hook_mail(alice, txn(), "noreply@example.com") is None
    assert await everyone.hook_mail(alice, txn(), "x@lists.example") is None
    anyone = plugin('[users.dave]\nsend_as = ["*"]\n')
    dave = conn(daemon="submission", auth_user="dave")
    assert await anyone.hook_mail(dave, txn(), "bob@example.com") is None


async def test_unauthenticated_relay_clients_are_not_checked(plugin, conn, txn):
    local = conn(relay_client=True)
    assert await plugin().hook_mail(local, txn(), "ceo@bigbank.test") is None


def message(from_: str) -> bytes:
    return (f"From: {from_}\r\nTo: x@elsewhere.example\r\nSubject: hi\r\n\r\nHi.\r\n"
            ).encode()


@pytest.mark.parametrize(("from_", "refused"), [
    ("Alice <alice@example.com>", None),
    ("alice@example.com, Info <info@example.org>", None),
    ("Alice <alice@example.com>, Bob <bob@example.com>", "bob@example.com"),
    ('"alice@example.com" <ceo@bigbank.test>', "ceo@bigbank.test"),
    # not an address list: Python's lax parser (before 3.13) reads two addresses, the
    # strict one (3.13, the image's) none; refused either way, named as it was read
    ("ceo@bigbank.test <alice@example.com>",
     ("ceo@bigbank.test", "ceo@bigbank.test <alice@example.com>")),
])
async def test_every_from_header_address_must_be_hers(plugin, conn, txn, from_, refused):
    alice = conn(daemon="submission", auth_user="alice")
    t = txn(sender="alice@example.com", data=message(from_))
    result = await plugin().hook_data_post(alice, t)
    if refused is None:
        assert result is None
    else:
        assert result.verdict is Verdict.DENY
        assert result.reply in {replies.FROM_NOT_OWNED.format(address=a, user="alice")
                                for a in ((refused,) if isinstance(refused, str) else refused)}
    assert await plugin(check_from_header=False).hook_data_post(alice, t) is None


async def test_a_second_from_header_is_checked_too(plugin, conn, txn):
    alice = conn(daemon="submission", auth_user="alice")
    data = b"From: alice@example.com\r\n" + message("bob@example.com")
    result = await plugin().hook_data_post(alice, txn(data=data))
    assert result.reply == replies.FROM_NOT_OWNED.format(address="bob@example.com",
                                                         user="alice")


@pytest.mark.parametrize(("from_", "refused"), [
    ("bob", "bob"),
    ("Bob <bob>", "bob"),
    ("alice@example.com, bob", "bob"),
    ("ceo", "ceo"),
    ("Alice <alice>", None),  # hers: Postfix would have made it alice@example.com
    ("info", None),
])
async def test_a_from_address_without_a_domain_is_the_primary_domains(plugin, conn, txn,
                                                                      from_, refused):
    alice = conn(daemon="submission", auth_user="alice")
    result = await plugin().hook_data_post(alice, txn(data=message(from_)))
    if refused is None:
        assert result is None
    else:
        assert result.verdict is Verdict.DENY
        assert result.reply == replies.FROM_NOT_OWNED.format(address=refused, user="alice")


async def test_a_sender_without_a_domain_is_the_primary_domains(plugin, conn, txn):
    alice = conn(daemon="submission", auth_user="alice")
    assert await plugin().hook_mail(alice, txn(), "alice") is None
    assert (await plugin().hook_mail(alice, txn(), "bob")).verdict is Verdict.DENY


@pytest.mark.parametrize("sender", ["everyone@example.com", "everyone+x@example.org"])
async def test_everyone_is_no_ones_own(plugin, conn, txn, sender):
    bob = conn(daemon="submission", auth_user="bob")
    assert (await plugin().hook_mail(bob, txn(), sender)).verdict is Verdict.DENY
    allowed = plugin('[users.dave]\nsend_as = ["everyone@example.com"]\n')
    dave = conn(daemon="submission", auth_user="dave")
    assert await allowed.hook_mail(dave, txn(), "everyone@example.com") is None


async def test_the_admin_does_not_own_a_group_left_to_her(plugin, conn, txn):
    """alice (the admin) gets the mail of a group no one is in; it is not hers to send
    as, nor a pseudonym of it. Her role addresses postmaster@ and abuse@ are."""
    extra = '[groups.board]\n[pseudonyms."chair"]\naccount = "board"\n'
    alice = conn(daemon="submission", auth_user="alice")
    p = plugin(extra)
    for sender in ("board@example.com", "chair@example.org"):
        assert (await p.hook_mail(alice, txn(), sender)).verdict is Verdict.DENY
    for sender in ("postmaster@example.com", "abuse@example.org", "alice@example.com"):
        assert await p.hook_mail(alice, txn(), sender) is None
    assert await plugin(extra, send_as=["board@example.com"]).hook_mail(
        alice, txn(), "board@example.com") is None
