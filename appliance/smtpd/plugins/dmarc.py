"""dmarc: the From: domain's DMARC policy, RFC 7489 (SME dmarc: DMARCReject, DMARCReporting).

After DATA the message is judged by appliance.smtpd.dmarc.evaluate (the policy lookup,
SPF and DKIM alignment with the From: domain, pct= sampling), from the spf and dkim
plugins' results. On failure the disposition says what to do:

    reject      refused with 550 5.7.1 when `reject` is on (SME DMARCReject); with it off
                the message is delivered and marked like quarantine
    quarantine  delivered with an "X-DMARC: quarantine" header for spam sorting
    none        delivered

A DNS timeout is logged and the message passes (never a 5xx; a 451 when the policy is
reject and `reject` is on). A pass earns karma, a failure under a policy costs karma.
This plugin writes the one Authentication-Results header, with the spf and dkim
plugins' parts before its own.

With `reporting` on (SME DMARCReporting) and a record asking for aggregate reports
(rua=), one row per message goes to <state>/dmarc.sqlite (opened on first use);
`appliance dmarc-report` (appliance.smtpd.dmarc.reports) sends them daily from
`report_sender`.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time

from appliance.smtpd import replies
from appliance.smtpd.dmarc import evaluate, reports
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.mailauth import add_result, drop_forged, write_header
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny, denysoft
from appliance.smtpd.settings import Settings

QUARANTINE_HEADER = "X-DMARC"


class Plugin(BasePlugin):
    name = "dmarc"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.dmarc
        self.reject = config.reject
        self.reporting = config.reporting
        self.report_sender = config.report_sender or f"postmaster@{settings.primary_domain}"
        self.db_path = ctx.state_dir / reports.DB_NAME
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self.random = random.random  # tests replace it

    # -- hook ---------------------------------------------------------------------------

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if conn.trusted or txn.whitelisted:
            # Not judged; a whitelisted envelope sender is anyone's to claim, so a
            # forged Authentication-Results in our name must still go.
            drop_forged(txn, self.ctx.hostname)
            return None
        try:
            return await self._judge(conn, txn)
        finally:
            write_header(txn, self.ctx.hostname)

    async def _judge(self, conn: Connection, txn: Transaction) -> Result | None:
        ev = await evaluate.evaluate(self.ctx.resolver, txn, helo=conn.helo,
                                     may_reject=self.reject, sample=self.random)
        add_result(txn, ev.auth_result)
        domain = ev.domain
        if domain is None:
            self.log.info("not judged: no From: domain, or several")
            return None
        if ev.error:
            self.log.info("%s: DMARC lookup failed, passing: %s", domain, ev.error)
            return None
        if ev.record is None:
            return None
        if ev.result == "temperror":
            self.log.info("%s: not judged, an aligned identifier hit a DNS error", domain)
            if ev.policy == "reject" and self.reject:
                return denysoft(replies.DMARC_UNKNOWN.format(domain=domain))
            return None
        if ev.result == "pass":
            conn.karma += 1
        elif ev.policy != "none":
            conn.karma -= 1
        self.log.info("%s %s (spf %s, dkim %s, p=%s): %s%s", domain, ev.result,
                      "aligned" if ev.spf_aligned else "not aligned",
                      "aligned" if ev.dkim_aligned else "not aligned", ev.policy,
                      ev.disposition, f" ({ev.reason})" if ev.reason else "")
        if self.reporting and ev.record.rua:
            await self._record(reports.row_of(ev, when=int(time.time()),
                                              source_ip=conn.remote_ip, sender=txn.sender,
                                              recipients=txn.recipients))
        if ev.disposition == "reject":
            return deny(replies.DMARC_REJECT.format(domain=domain))
        if ev.disposition == "quarantine":
            txn.prepend_header(QUARANTINE_HEADER, "quarantine")
        return None

    # -- reporting ----------------------------------------------------------------------

    async def _record(self, row: reports.Row) -> None:
        try:
            await asyncio.to_thread(self._store, row)
        except (OSError, sqlite3.Error) as e:
            self.log.error("cannot record DMARC result in %s: %s", self.db_path, e)

    def _store(self, row: reports.Row) -> None:
        with self._db_lock:
            if self._db is None:
                # a short busy timeout: a locked store costs a row, not a slow client
                self._db = reports.open_store(self.db_path, timeout=1.0)
            reports.store(self._db, row)

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None
