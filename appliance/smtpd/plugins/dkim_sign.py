"""dkim_sign: DKIM-signs the mail our users send (SME DKIMSigning, dkim_keys).

At the queue hook, mail from an authenticated user or a relay client whose From: domain
(the envelope sender's domain if there is no From:) is one of our domains gets a
DKIM-Signature: rsa-sha256, relaxed/simple, over the RFC 6376 recommended headers
present, From signed once more so no second From can be added. Settings: `enabled`
(SME DKIMSigning), `selector` (the default key's selector), and per domain
`domains.<d>.dkim_signing` (default on) to leave one domain out.

Keys are SME's layout under settings["dkim_keys"] (see appliance.dkim_keys): the domain's
own <dir>/<domain>/private if it exists, else <dir>/default/private. They are read on
first use and cached; a SIGHUP builds new plugins, so new keys are picked up then. A
missing or unreadable key is logged once per domain and the mail goes out unsigned:
signing never refuses mail.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import dkim

from appliance import dkim_keys
from appliance.smtpd.address import split_address
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mailauth import domain_of, from_addresses
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.settings import Settings

# RFC 6376 §5.4.1's recommended headers (dkimpy's list); signed when present.
SIGNED = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "resent-date", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-message-id", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive",
)
CANONICALIZATION = (b"relaxed", b"simple")


class Plugin(BasePlugin):
    name = "dkim_sign"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.dkim_sign
        self.enabled = config.enabled
        self.selector = config.selector
        self.keys_dir = Path(settings.dkim_keys)
        opted_out = {d.lower() for d, e in settings.domains.items() if not e.dkim_signing}
        self.domains = frozenset(
            d.lower() for d in settings.local_domains if d.lower() not in opted_out)
        self._keys: dict[str, tuple[str, bytes] | None] = {}

    def key(self, domain: str) -> tuple[str, bytes] | None:
        """(selector, PEM private key) for a domain; None (logged once) if there is none.

        Any trouble with the key files means unsigned mail, never a refused one.
        """
        if domain not in self._keys:
            self._keys[domain] = None
            try:
                found = dkim_keys.key_for(self.keys_dir, domain, self.selector)
                if found is None:
                    self.log.error("no DKIM key for %s in %s: mail goes out unsigned",
                                   domain, self.keys_dir)
                else:
                    selector, path = found
                    self._keys[domain] = (selector, path.read_bytes())
            except OSError as e:
                self.log.error("cannot read the DKIM key of %s in %s: %s: mail goes out "
                               "unsigned", domain, self.keys_dir, e)
        return self._keys[domain]

    def signing_domain(self, txn: Transaction) -> str:
        addresses = from_addresses(txn.header_bytes)
        if addresses:
            return domain_of(addresses[0])
        return split_address(txn.sender)[1] if txn.sender else ""

    @staticmethod
    def sign(data: bytes, selector: str, domain: str, key: bytes) -> bytes:
        """The DKIM-Signature header line(s), CRLF-terminated."""
        d = dkim.DKIM(data, linesep=b"\r\n")
        present = {name.decode("ascii", "replace").lower() for name, _ in d.headers}
        include = [h for h in SIGNED if h in present]
        include += ["from"]  # over-sign: a second From: breaks the signature
        sig = d.sign(selector.encode(), domain.encode(), key, include_headers=[
            h.encode() for h in include], canonicalize=CANONICALIZATION)
        # dkimpy folds with CRLF and ends with the line separator; make sure of both
        sig = sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return sig if sig.endswith(b"\r\n") else sig + b"\r\n"

    async def hook_queue(self, conn: Connection, txn: Transaction) -> None:
        if not self.enabled or not (conn.authenticated or conn.relay_client):
            return
        domain = self.signing_domain(txn)
        if domain not in self.domains:
            return
        found = self.key(domain)
        if found is None:
            return
        selector, key = found
        try:
            sig = await asyncio.to_thread(self.sign, txn.data, selector, domain, key)
        except dkim.DKIMException as e:
            self.log.error("cannot sign mail from %s: %s: sent unsigned", domain, e)
            return
        txn.data = sig + txn.data
        self.log.info("signed for %s with selector %s", domain, selector)
