"""check_smtp_forward: asks a delegated domain's own server about each recipient.

For a domain delivered to another server ([domains.*] mail_server, SME MailServer /
DelegateMailServer) our users list does not say who exists, so at RCPT we open an SMTP
session to that server (EHLO, MAIL FROM, RCPT TO, RSET, QUIT) and pass on its answer:
a 5xx refuses the recipient with that server's words, a 4xx or no answer defers with
4.4.1, a 2xx lets rcpt_ok accept. Answers to RCPT are remembered for five minutes per
recipient, so a mailing to many of the same people does not ask again and again.
No settings of its own: it reads the delegated domains (settings["delegated_domains"]).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict

import aiosmtplib

from appliance.config.schema import parse_server
from appliance.smtpd import replies
from appliance.smtpd.address import split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, deny, denysoft
from appliance.smtpd.settings import Settings

ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(\s|$)")


def smtp_reply(code: int, text: str, default_enhanced: str) -> str:
    """The other server's answer as one reply line, with an enhanced status code."""
    text = " ".join(text.split())
    if not ENHANCED.match(text):
        text = f"{default_enhanced} {text}".rstrip()
    return f"{code} {text}"


def _about_the_mailbox(reply: str) -> bool:
    parts = reply.split(maxsplit=2)
    return len(parts) > 1 and parts[1].startswith("5.1.")


class Plugin(BasePlugin):
    name = "check_smtp_forward"
    timeout = 30.0  # seconds for the whole check
    cache_seconds = 300.0
    cache_size = 1000

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.servers: dict[str, tuple[str, int]] = {}
        for domain, server in settings.delegated_domains.items():
            try:
                self.servers[domain.lower().rstrip(".")] = parse_server(server)
            except ValueError as e:
                raise PluginError(f"check_smtp_forward: domain {domain}: {e}") from None
        # recipient -> (expires, reply or None for accepted)
        self.cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def _cached(self, key: str) -> tuple[bool, str | None]:
        entry = self.cache.get(key)
        if entry is None:
            return False, None
        if entry[0] < time.monotonic():
            del self.cache[key]
            return False, None
        self.cache.move_to_end(key)
        return True, entry[1]

    def _remember(self, key: str, reply: str | None) -> None:
        self.cache[key] = (time.monotonic() + self.cache_seconds, reply)
        self.cache.move_to_end(key)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    async def _ask(self, host: str, port: int, sender: str,
                   recipient: str) -> tuple[str, str | None]:
        """("rcpt", None): accepted; ("mail" or "rcpt", "5xx ..."): refused at that stage.

        Raises an SMTPException (or OSError) when the server gives no clear answer.
        """
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=self.timeout,
                               local_hostname=self.ctx.hostname, start_tls=None,
                               validate_certs=False)
        await smtp.connect()  # greeting, EHLO (HELO if refused), STARTTLS if offered
        result: tuple[str, str | None]
        try:
            for stage, command, arg in (("mail", b"MAIL", f"FROM:<{sender}>"),
                                        ("rcpt", b"RCPT", f"TO:<{recipient}>")):
                response = await smtp.execute_command(command, arg.encode())
                if 500 <= response.code < 600:
                    default = "5.7.1" if stage == "mail" else "5.1.1"
                    result = stage, smtp_reply(response.code, response.message, default)
                    break
                if not 200 <= response.code < 300:
                    raise aiosmtplib.SMTPResponseException(response.code, response.message)
            else:
                result = "rcpt", None
        except BaseException:
            smtp.close()
            raise
        try:  # be polite, briefly; the answer is known
            await smtp.execute_command(b"RSET", timeout=5)
            await smtp.quit(timeout=5)
        except aiosmtplib.SMTPException:
            pass
        finally:
            smtp.close()
        return result

    async def hook_rcpt(self, conn: Connection, txn: Transaction,
                        recipient: str) -> Result | None:
        domain = split_address(recipient)[1]
        server = self.servers.get(domain)
        if server is None:
            return None
        key = recipient.lower()
        known, reply = self._cached(key)
        if not known:
            host, port = server
            try:
                stage, reply = await asyncio.wait_for(
                    self._ask(host, port, txn.sender, recipient), self.timeout)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, UnicodeError) as e:
                self.log.info("cannot verify %s with %s:%d: %s", recipient, host, port,
                              str(e)[:200] or type(e).__name__)
                return denysoft(replies.CANNOT_VERIFY_RECIPIENT.format(recipient=recipient,
                                                                       host=host))
            # Remember what depends on the recipient alone: accepted, or "no such user"
            # (5.1.x). A refusal about the sender or client (Postfix reports those at
            # RCPT too) must not be served to the next sender.
            if stage == "rcpt" and (reply is None or _about_the_mailbox(reply)):
                self._remember(key, reply)
        if reply is None:
            self.log.info("%s accepted by %s", recipient, server[0])
            return None
        self.log.info("%s refused by %s: %s", recipient, server[0], reply)
        return deny(reply)
