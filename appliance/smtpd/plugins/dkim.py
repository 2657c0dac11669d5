"""dkim: verifies the DKIM signatures of incoming mail (SME dkim, `reject 0`).

Every DKIM-Signature (at most MAX_SIGNATURES) is checked with dkimpy in a worker thread;
its key lookups go through the daemon's resolver (`resolver.sync_query`). The results,
`txn.dkim`, a list of `DkimSignature(domain, selector, passed, reason)`, are what
dmarc needs; the reason starts with the RFC 8601 result (pass, fail, neutral, permerror,
temperror). As in SME, a signature never refuses mail on its own: "Inbound DKIM checks
are only used by DMARC" (seed 001).

Each signature adds a "dkim=..." part (or one "dkim=none") to the Authentication-Results
header; dmarc, which runs next, writes that single header. When dmarc is disabled this
plugin writes it. `enabled` (default on) turns verification off.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, cast

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value
from dns.rdtypes.txtbase import TXTBase

from appliance.smtpd import peers
from appliance.smtpd.dns import DNSTempError
from appliance.smtpd.hooks import Connection, DkimSignature, Transaction
from appliance.smtpd.mailauth import add_result, comment, drop_forged, token, write_header
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.settings import Settings

MAX_SIGNATURES = 8  # verify no more than this many signatures per message


class _DNSFailed(Exception):
    """A key lookup timed out (not a DKIMException, so dkimpy lets it through)."""


class _QuietLogger(logging.LoggerAdapter):
    """dkimpy logs every bad key as an error; we log one line per signature instead."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


class Plugin(BasePlugin):
    name = "dkim"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.enabled = settings.plugin_settings.dkim.enabled
        # dmarc runs for the same peers, after us; without it we write the A-R header.
        self.writes_header = not peers.enabled("dmarc", settings.plugin_settings)
        self._dkimlog = _QuietLogger(self.log.getChild("dkimpy"), {})

    # -- worker thread ------------------------------------------------------------------

    def _key(self, name: bytes | str, timeout: float = 5) -> bytes:
        """dkimpy's dnsfunc: the TXT record (bytes) at name, b"" if there is none."""
        qname = (name.decode("ascii", "replace") if isinstance(name, bytes) else name)
        try:
            records = self.ctx.resolver.sync_query(qname.rstrip("."), "TXT")
        except (DNSTempError, concurrent.futures.TimeoutError) as e:
            raise _DNSFailed(str(e) or "DNS timeout") from None
        texts = [b"".join(cast(TXTBase, r).strings) for r in records]
        keys = [t for t in texts if b"p=" in t]
        return (keys or texts or [b""])[0]

    def verify(self, data: bytes) -> list[DkimSignature]:
        try:
            d = dkim.DKIM(data, logger=self._dkimlog, timeout=self.ctx.resolver.timeout)
        except dkim.DKIMException as e:
            self.log.info("cannot parse the message for DKIM: %s", e)
            return []
        headers = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
        out = []
        for idx, value in enumerate(headers[:MAX_SIGNATURES]):
            try:
                tags = parse_tag_value(value)
            except InvalidTagValueList:
                tags = {}
            domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
            selector = tags.get(b"s", b"").decode("ascii", "replace")
            out.append(DkimSignature(domain, selector, *self._verify_one(d, idx)))
        return out

    def _verify_one(self, d: dkim.DKIM, idx: int) -> tuple[bool, str]:
        asked: list[bytes] = []

        def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes:
            key = self._key(name, timeout)
            asked.append(key)
            return key

        try:
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
        except _DNSFailed as e:
            return False, f"temperror ({e})"
        except dkim.ValidationError as e:  # also missing tags, expired, ...
            if str(e).startswith("body hash mismatch"):
                return False, "fail (body hash mismatch)"
            return False, f"permerror ({e})"
        except dkim.DKIMException as e:  # malformed signature or key
            return False, f"permerror ({e})"
        if ok:
            return True, "pass"
        if asked and not asked[-1]:
            return False, "permerror (no key published)"
        if not asked:
            return False, "permerror (unusable signature)"
        return False, "fail (signature did not verify)"

    # -- hook ---------------------------------------------------------------------------

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> None:
        if not self.enabled or conn.trusted or txn.whitelisted:
            if self.writes_header:
                drop_forged(txn, self.ctx.hostname)
            return
        if b"dkim-signature:" in txn.header_bytes.lower():
            sigs = await self.ctx.resolver.in_thread(self.verify, txn.data)
        else:
            sigs = []  # most mail: no worker thread for nothing to verify
        txn.dkim = sigs
        if not sigs:
            add_result(txn, "dkim=none")
        for s in sigs:
            add_result(txn, f"dkim={s.result}{comment(s.detail)} header.d={token(s.domain)} "
                            f"header.s={token(s.selector)}")
        self.log.info("%s", ", ".join(f"{s.domain}/{s.selector}: {s.reason}" for s in sigs)
                      or "no signature")
        if self.writes_header:
            write_header(txn, self.ctx.hostname)
