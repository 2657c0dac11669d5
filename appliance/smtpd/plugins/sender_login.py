"""sender_login: our logged-in users send only as themselves (Postfix's
reject_sender_login_mismatch; SME has no equivalent, any user could send as anyone).

After AUTH, MAIL FROM must be an address that delivers to the user, as
appliance.accounts.addresses() says: their own user@ at every mailbox domain, a
pseudonym of theirs, a group whose mail they get (members minus exclusions), each also
with an extension (alice-lists@). Or it must match a `send_as` pattern: the plugin's
own (every user) or `users.NAME.send_as` (that user); `"*"` permits any address. The
null sender (bounces, vacation replies) is always allowed. Refused: 553 5.7.1 at MAIL.

With `check_from_header` (the default) every address of every From: header is checked
the same way after DATA (550 5.7.1: RFC 5321 has no 553 there), and a From: that
names an address the parser cannot read is refused too, so that a mail client shows
no sender we did not check. An address without a domain (`From: bob`, MAIL FROM:<bob>)
is judged as bob@ the primary domain, which is what Postfix would make of it.
everyone@ (every user gets it) and a group left to the admin because no one is in it
are not anyone's own: only send_as permits them. The catch-all of delivery.unknown_user
is not an address one may send as. Unauthenticated clients (relay clients on the local
networks) are not checked: there is no login to compare with.
"""

from __future__ import annotations

import email.utils
import re

from appliance.smtpd import replies
from appliance.smtpd.address import AddressPatterns, mailbox_of, split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mailauth import from_values
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, deny
from appliance.smtpd.settings import Settings

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def shown(text: str) -> str:
    """Client-chosen text as it may appear in a reply line or the log."""
    return _UNPRINTABLE.sub("?", " ".join(text.split()))[:256]


class Plugin(BasePlugin):
    name = "sender_login"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.check_from = settings.plugin_settings.sender_login.check_from_header
        self.primary = settings.primary_domain.lower()
        addresses = settings.addresses
        self.addresses = frozenset(a.lower() for a in addresses if not a.startswith("@"))
        # everyone@ and the groups left to the admin deliver to users who do not own them
        unowned = {a.lower() for a in settings.unowned_addresses}
        # user -> the addresses that deliver to them (mailboxes are user@primary)
        self.owned: dict[str, frozenset[str]] = {}
        for user in settings.users:
            mailbox = f"{user}@{self.primary}".lower()
            self.owned[user] = frozenset(
                a.lower() for a, targets in addresses.items()
                if not a.startswith("@") and a.lower() not in unowned
                and mailbox in (t.lower() for t in targets))
        everyone = list(settings.plugin_settings.sender_login.send_as)
        per_user = settings.send_as
        try:
            self.patterns = {user: AddressPatterns(everyone + list(per_user.get(user, ())))
                             for user in settings.users}
        except re.error as e:
            raise PluginError(f"sender_login: bad send_as pattern: {e}") from None
        # the extension characters of check_goodrcptto (alice-lists@ is alice's too)
        self.separator = settings.plugin_settings.check_goodrcptto.extension_separator

    def permitted(self, user: str, address: str) -> bool:
        """May USER send as ADDRESS?"""
        if not address:
            return True  # the null sender
        if "@" not in address:  # Postfix would qualify a bare `bob` as bob@ the primary
            address = f"{address}@{self.primary}"
        local, domain = split_address(address)
        mailbox = mailbox_of(local, domain, self.addresses, self.separator)
        if mailbox is not None and mailbox in self.owned.get(user, frozenset()):
            return True
        patterns = self.patterns.get(user)
        return patterns is not None and patterns.matches(address)

    async def hook_mail(self, conn: Connection, txn: Transaction,
                        sender: str) -> Result | None:
        if not conn.authenticated or self.permitted(conn.auth_user, sender):
            return None
        self.log.info("%s: user %s may not send as <%s>", conn.remote_ip, conn.auth_user,
                      shown(sender))
        return deny(replies.SENDER_NOT_OWNED.format(address=shown(sender),
                                                    user=conn.auth_user))

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if not conn.authenticated or not self.check_from:
            return None
        for value in from_values(txn.header_bytes):
            found = [a for _name, a in email.utils.getaddresses([value])]
            if value.strip() and (not found or not all(found)):
                found = [value]  # unreadable: judged (and refused) as it is
            for address in filter(None, found):
                if not self.permitted(conn.auth_user, address):
                    self.log.info("%s: user %s may not send as From: %s", conn.remote_ip,
                                  conn.auth_user, shown(address))
                    return deny(replies.FROM_NOT_OWNED.format(address=shown(address),
                                                              user=conn.auth_user))
        return None
