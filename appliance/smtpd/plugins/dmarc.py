"""dmarc: the From: domain's DMARC policy, RFC 7489 (SME dmarc: DMARCReject, DMARCReporting).

After DATA the author domain (the domain of the From: addresses) is looked up at
_dmarc.<domain>, then at its organizational domain (public suffix list). The message
passes when SPF passed for an envelope domain aligned with it (aspf: relaxed = same
organizational domain, strict = same name) or when a valid DKIM signature's d= is aligned
(adkim). On failure the policy (sp= for subdomains when the record is the organizational
domain's), sampled by pct= (a message left out is handled one step softer, RFC 7489
§6.6.4), says what to do:

    reject      refused with 550 5.7.1 when `reject` is on (SME DMARCReject); with it off
                the message is delivered and marked like quarantine
    quarantine  delivered with an "X-DMARC: quarantine" header for spam sorting
    none        delivered

Messages without a From: domain, or with addresses in several domains, are not judged
(dmarc=none); several addresses of one domain are judged by that domain (RFC 7489 §6.6.1).
A DNS timeout is logged and the message passes (never a 5xx). This plugin writes the one
Authentication-Results header, with the spf and dkim plugins' parts before its own.

With `reporting` on (SME DMARCReporting) and a record asking for aggregate reports
(rua=), one row per message goes to <state>/dmarc.sqlite (opened on first use);
`appliance dmarc-report` (appliance.dmarc_report) sends them daily from `report_sender`.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from typing import Any

from appliance import dmarc_report
from appliance.smtpd.address import split_address
from appliance.smtpd.dns import DNSTempError
from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.plugins._mailauth import (
    DmarcRecord,
    add_result,
    aligned,
    author_domains,
    drop_forged,
    find_record,
    is_domain,
    write_header,
)
from appliance.smtpd.results import Result, deny, denysoft

QUARANTINE_HEADER = "X-DMARC"
SOFTER = {"reject": "quarantine", "quarantine": "none", "none": "none"}


class Plugin(BasePlugin):
    name = "dmarc"

    def __init__(self, settings: dict[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.reject = self._flag("reject", False)
        self.reporting = self._flag("reporting", True)
        sender = self.config.get("report_sender", "") or ""
        if not isinstance(sender, str) or (sender and "@" not in sender):
            raise PluginError(f"dmarc: report_sender {sender!r} is not an address")
        self.report_sender = sender or f"postmaster@{settings.get('primary_domain', 'localhost')}"
        self.db_path = ctx.state_dir / dmarc_report.DB_NAME
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self.random = random.random  # tests replace it

    def _flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            raise PluginError(f"dmarc: {key} must be true or false, not {value!r}")
        return value

    # -- the author domain --------------------------------------------------------------

    def author_domain(self, txn: Transaction) -> str | None:
        """The From: domain; None without one or with several different ones."""
        domains = author_domains(txn.header_bytes)
        if len(domains) != 1:
            return None
        domain = domains.pop()
        return domain if is_domain(domain) else None

    # -- hook ---------------------------------------------------------------------------

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> Result | None:
        if conn.trusted or txn.whitelisted:
            # Not judged; a whitelisted envelope sender is anyone's to claim, so a
            # forged Authentication-Results in our name must still go.
            drop_forged(txn, self.ctx.hostname)
            return None
        try:
            return await self._evaluate(conn, txn)
        finally:
            write_header(txn, self.ctx.hostname)

    async def _evaluate(self, conn: Connection, txn: Transaction) -> Result | None:
        domain = self.author_domain(txn)
        if domain is None:
            self.log.info("not judged: no From: domain, or several")
            add_result(txn, "dmarc=none (no single From domain)")
            return None
        try:
            record = await find_record(self.ctx.resolver, domain)
        except DNSTempError as e:
            self.log.info("%s: DMARC lookup failed, passing: %s", domain, e)
            add_result(txn, f"dmarc=temperror header.from={domain}")
            return None
        if record is None:
            add_result(txn, f"dmarc=none header.from={domain}")
            return None

        spf_result, _why, spf_domain = self._spf(txn, conn)
        spf_ok = spf_result == "pass" and aligned(spf_domain, domain, record.aspf)
        sigs = txn.notes.get("dkim") or []
        dkim_ok = any(s.passed and aligned(s.domain, domain, record.adkim)
                      for s in sigs)  # type: ignore[attr-defined]
        passed = spf_ok or dkim_ok
        policy = record.policy_for(domain)
        # An identifier that would align but could not be checked (DNS timeout) makes
        # the verdict unknown, not "fail": a timeout never becomes a 5xx.
        unknown = not passed and (
            (spf_result == "temperror" and aligned(spf_domain, domain, record.aspf))
            or any(s.result == "temperror" and aligned(s.domain, domain, record.adkim)
                   for s in sigs))  # type: ignore[attr-defined]
        if unknown:
            add_result(txn, f"dmarc=temperror header.from={domain}")
            self.log.info("%s: not judged, an aligned identifier hit a DNS error", domain)
            if policy == "reject" and self.reject:
                return denysoft(f"451 4.7.5 Cannot check the DMARC policy of {domain} now, "
                                "try again later")
            return None
        disposition, reason = "none", ""
        if not passed and policy != "none":
            if record.pct < 100 and self.random() * 100 >= record.pct:
                disposition, reason = SOFTER[policy], "sampled_out"
            else:
                disposition = policy
            if disposition == "reject" and not self.reject:
                disposition, reason = "quarantine", "local_policy"
        if passed:
            conn.karma += 1
        elif policy != "none":
            conn.karma -= 1

        add_result(txn, f"dmarc={'pass' if passed else 'fail'} (p={record.p} "
                        f"dis={disposition}) header.from={domain}")
        self.log.info("%s %s (spf %s, dkim %s, p=%s): %s%s", domain,
                      "pass" if passed else "fail", "aligned" if spf_ok else "not aligned",
                      "aligned" if dkim_ok else "not aligned", policy, disposition,
                      f" ({reason})" if reason else "")
        if self.reporting and record.rua:
            await self._record(conn, txn, domain, record, spf_result, spf_domain, spf_ok,
                               sigs, dkim_ok, disposition, reason)
        if disposition == "reject":
            return deny(f"550 5.7.1 DMARC policy of {domain} says reject: not aligned")
        if disposition == "quarantine":
            txn.prepend_header(QUARANTINE_HEADER, "quarantine")
        return None

    @staticmethod
    def _spf(txn: Transaction, conn: Connection) -> tuple[str, str, str]:
        note = txn.notes.get("spf")
        if isinstance(note, tuple) and len(note) == 3:
            return note  # type: ignore[return-value]
        domain = split_address(txn.sender)[1] if txn.sender else conn.helo.lower()
        return "none", "", domain

    # -- reporting ----------------------------------------------------------------------

    async def _record(self, conn: Connection, txn: Transaction, domain: str,
                      record: DmarcRecord, spf_result: str, spf_domain: str, spf_ok: bool,
                      sigs: Any, dkim_ok: bool, disposition: str, reason: str) -> None:
        row = dmarc_report.Row(
            time=int(time.time()), source_ip=conn.remote_ip, header_from=domain,
            envelope_from=split_address(txn.sender)[1] if txn.sender else "",
            envelope_to=split_address(txn.recipients[0])[1] if txn.recipients else "",
            policy_domain=record.domain, spf_domain=spf_domain,
            spf_scope="mfrom" if txn.sender else "helo", spf_result=spf_result,
            spf_aligned=spf_ok, dkim=[(s.domain, s.selector, s.result) for s in sigs],
            dkim_aligned=dkim_ok, disposition=disposition, reason=reason, p=record.p,
            sp=record.sp, adkim=record.adkim, aspf=record.aspf, pct=record.pct,
            fo=record.fo, rua=",".join(record.rua))
        try:
            await asyncio.to_thread(self._store, row)
        except (OSError, sqlite3.Error) as e:
            self.log.error("cannot record DMARC result in %s: %s", self.db_path, e)

    def _store(self, row: dmarc_report.Row) -> None:
        with self._db_lock:
            if self._db is None:
                # a short busy timeout: a locked store costs a row, not a slow client
                self._db = dmarc_report.open_store(self.db_path, timeout=1.0)
            dmarc_report.store(self._db, row)

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None
