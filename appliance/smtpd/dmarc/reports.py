"""DMARC aggregate reports (RFC 7489 §7.2, Appendix C; SME DMARCReporting).

The dmarc plugin stores one row per judged message (`row_of` an evaluation) from a
domain whose DMARC record asks for reports (rua=) in <state>/dmarc.sqlite. Once a day
`appliance dmarc-report` (`main` below) groups the rows of each finished UTC day by
policy domain, builds the aggregate XML, gzips it, mails it from
`smtpd.dmarc.report_sender` (default postmaster@<primary domain>) to the record's
mailto: addresses through Postfix's hand-off listener (127.0.0.1:10025), and deletes
the rows it reported. Addresses outside the policy domain's organization are only used
if they agree to receive them (the <domain>._report._dmarc.<their domain> TXT record,
RFC 7489 §7.1). Rows that could not be
sent stay for the next run; rows older than KEEP_DAYS are dropped. When smtpd.dkim_sign
is on, the reports are DKIM-signed like our users' mail.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import smtplib
import sqlite3
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import paths
from appliance.smtpd.address import split_address
from appliance.smtpd.dmarc.evaluate import Evaluation
from appliance.smtpd.mailauth import org_domain

if TYPE_CHECKING:
    from appliance.smtpd.settings import Settings

log = logging.getLogger("appliance.smtpd.dmarc.reports")

DB_NAME = "dmarc.sqlite"
DAY = 86400
KEEP_DAYS = 7  # rows that could not be reported for this long are dropped
HANDOFF = paths.HANDOFF_ADDRESS

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,          -- unix time the message was received
    source_ip TEXT NOT NULL,
    header_from TEXT NOT NULL,      -- RFC5322.From domain
    envelope_from TEXT NOT NULL,    -- RFC5321.MailFrom domain ('' for the null sender)
    envelope_to TEXT NOT NULL,      -- our recipient domain
    policy_domain TEXT NOT NULL,    -- where the DMARC record was found
    spf_domain TEXT NOT NULL,
    spf_scope TEXT NOT NULL,        -- mfrom or helo
    spf_result TEXT NOT NULL,
    spf_aligned INTEGER NOT NULL,
    dkim TEXT NOT NULL,             -- JSON [[domain, selector, result], ...]
    dkim_aligned INTEGER NOT NULL,
    disposition TEXT NOT NULL,      -- none, quarantine, reject
    reason TEXT NOT NULL,           -- '' or sampled_out, local_policy, ...
    p TEXT NOT NULL, sp TEXT NOT NULL, adkim TEXT NOT NULL, aspf TEXT NOT NULL,
    pct INTEGER NOT NULL,
    fo TEXT NOT NULL,
    rua TEXT NOT NULL               -- comma-separated mailto addresses
);
CREATE INDEX IF NOT EXISTS messages_domain_time ON messages (policy_domain, time);
"""


@dataclass
class Row:
    time: int
    source_ip: str
    header_from: str
    envelope_from: str
    envelope_to: str
    policy_domain: str
    spf_domain: str
    spf_scope: str
    spf_result: str
    spf_aligned: bool
    dkim: list[tuple[str, str, str]] = field(default_factory=list)
    dkim_aligned: bool = False
    disposition: str = "none"
    reason: str = ""
    p: str = "none"
    sp: str = "none"
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    fo: str = "0"
    rua: str = ""


COLUMNS = [f for f in Row.__dataclass_fields__]


def row_of(ev: Evaluation, *, when: int, source_ip: str, sender: str,
           recipients: list[str]) -> Row:
    """The row to store for a judged message (ev.judged, ev.record set)."""
    assert ev.record is not None and ev.domain is not None and ev.spf is not None
    record = ev.record
    return Row(
        time=when, source_ip=source_ip, header_from=ev.domain,
        envelope_from=split_address(sender)[1] if sender else "",
        envelope_to=split_address(recipients[0])[1] if recipients else "",
        policy_domain=record.domain, spf_domain=ev.spf.domain,
        spf_scope="mfrom" if sender else "helo", spf_result=ev.spf.result,
        spf_aligned=ev.spf_aligned, dkim=[(s.domain, s.selector, s.result) for s in ev.dkim],
        dkim_aligned=ev.dkim_aligned, disposition=ev.disposition, reason=ev.reason,
        p=record.p, sp=record.sp, adkim=record.adkim, aspf=record.aspf, pct=record.pct,
        fo=record.fo, rua=",".join(record.rua))


def open_store(path: str | Path, timeout: float = 10.0) -> sqlite3.Connection:
    """The row store, created if need be (rollback journal, not WAL: the CLI may run as
    another user, and WAL's -wal/-shm files would then belong to it). Use from one
    thread at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
    db.executescript(SCHEMA)
    return db


def store(db: sqlite3.Connection, row: Row) -> None:
    values = asdict(row)
    values["dkim"] = json.dumps([list(d) for d in row.dkim])
    values["spf_aligned"] = int(row.spf_aligned)
    values["dkim_aligned"] = int(row.dkim_aligned)
    with db:
        db.execute(f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(COLUMNS))})", [values[c] for c in COLUMNS])


def _row(values: tuple[Any, ...]) -> tuple[int, Row]:
    rid, *rest = values
    row = Row(**dict(zip(COLUMNS, rest, strict=True)))
    row.dkim = [tuple(d) for d in json.loads(str(row.dkim))]
    row.spf_aligned, row.dkim_aligned = bool(row.spf_aligned), bool(row.dkim_aligned)
    return rid, row


def pending(db: sqlite3.Connection, before: int) -> dict[tuple[str, int], list[tuple[int, Row]]]:
    """Rows received before `before`, grouped by (policy domain, UTC day start)."""
    out: dict[tuple[str, int], list[tuple[int, Row]]] = {}
    cur = db.execute(f"SELECT id, {', '.join(COLUMNS)} FROM messages WHERE time < ? "
                     "ORDER BY policy_domain, time, id", (before,))
    for values in cur:
        rid, row = _row(values)
        out.setdefault((row.policy_domain, row.time - row.time % DAY), []).append((rid, row))
    return out


# -- the report -------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def build_report(rows: Iterable[Row], *, org_name: str, email: str, domain: str,
                 begin: int, end: int, report_id: str) -> bytes:
    """The aggregate report XML (RFC 7489 Appendix C) for one policy domain."""
    rows = list(rows)
    root = ET.Element("feedback")
    _sub(root, "version", "1.0")
    meta = _sub(root, "report_metadata")
    _sub(meta, "org_name", org_name)
    _sub(meta, "email", email)
    _sub(meta, "report_id", report_id)
    dr = _sub(meta, "date_range")
    _sub(dr, "begin", begin)
    _sub(dr, "end", end)
    latest = rows[-1] if rows else Row(0, "", domain, "", "", domain, "", "mfrom", "none",
                                       False)
    pol = _sub(root, "policy_published")
    _sub(pol, "domain", domain)
    _sub(pol, "adkim", latest.adkim)
    _sub(pol, "aspf", latest.aspf)
    _sub(pol, "p", latest.p)
    _sub(pol, "sp", latest.sp)
    _sub(pol, "pct", latest.pct)
    _sub(pol, "fo", latest.fo)

    counts: dict[tuple[Any, ...], int] = {}
    for r in rows:
        key = (r.source_ip, r.disposition, r.dkim_aligned, r.spf_aligned, r.reason,
               r.envelope_to, r.envelope_from, r.header_from, tuple(map(tuple, r.dkim)),
               r.spf_domain, r.spf_scope, r.spf_result)
        counts[key] = counts.get(key, 0) + 1
    for key, count in counts.items():
        (ip, disposition, dkim_ok, spf_ok, reason, env_to, env_from, header_from, dkims,
         spf_domain, spf_scope, spf_result) = key
        rec = _sub(root, "record")
        row = _sub(rec, "row")
        _sub(row, "source_ip", ip)
        _sub(row, "count", count)
        pe = _sub(row, "policy_evaluated")
        _sub(pe, "disposition", disposition)
        _sub(pe, "dkim", "pass" if dkim_ok else "fail")
        _sub(pe, "spf", "pass" if spf_ok else "fail")
        if reason:
            _sub(_sub(pe, "reason"), "type", reason)
        ids = _sub(rec, "identifiers")
        if env_to:
            _sub(ids, "envelope_to", env_to)
        _sub(ids, "envelope_from", env_from)
        _sub(ids, "header_from", header_from)
        auth = _sub(rec, "auth_results")
        for d_domain, d_selector, d_result in dkims:
            d = _sub(auth, "dkim")
            _sub(d, "domain", d_domain)
            if d_selector:
                _sub(d, "selector", d_selector)
            _sub(d, "result", d_result)
        s = _sub(auth, "spf")
        _sub(s, "domain", spf_domain)
        _sub(s, "scope", spf_scope)
        _sub(s, "result", spf_result)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def build_message(xml: bytes, *, sender: str, recipients: list[str], org_name: str,
                  domain: str, begin: int, end: int, report_id: str) -> EmailMessage:
    """The report mail (RFC 7489 §7.2.1.1): the gzipped XML as an attachment."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = f"Report Domain: {domain} Submitter: {org_name} Report-ID: <{report_id}>"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(f"DMARC aggregate report from {org_name} for {domain}.\n")
    filename = f"{org_name}!{domain}!{begin}!{end}.xml.gz"
    msg.add_attachment(gzip.compress(xml, mtime=0), maintype="application",
                       subtype="gzip", filename=filename)
    return msg


# -- where reports may go ---------------------------------------------------------------

TxtLookup = Callable[[str], list[str]]


def _dns_txt(name: str) -> list[str]:
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=10)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as e:
        raise OSError(f"DNS lookup of {name} failed: {e}") from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


class ConsentUnknown(OSError):
    """Whether an outside rua address takes our reports could not be looked up now."""


def allowed_recipients(domain: str, rua: Iterable[str], txt: TxtLookup = _dns_txt) -> list[str]:
    """The rua addresses we may send to: same organization, or agreed (RFC 7489 §7.1).

    ConsentUnknown when a lookup failed: the report waits for a run that can tell.
    """
    out = []
    for address in rua:
        target = address.rpartition("@")[2].lower()
        if org_domain(target) != org_domain(domain):
            try:
                texts = txt(f"{domain}._report._dmarc.{target}")
            except OSError as e:
                raise ConsentUnknown(f"cannot verify report address {address} for "
                                     f"{domain}: {e}") from None
            if not any(t.strip().startswith("v=DMARC1") for t in texts):
                log.info("report address %s does not accept reports for %s", address, domain)
                continue
        if address not in out:
            out.append(address)
    return out


# -- sending ----------------------------------------------------------------------------


Signer = Callable[[bytes], bytes]  # message -> DKIM-Signature header + message


def send(msg: EmailMessage, sender: str, recipients: list[str],
         host: str = HANDOFF[0], port: int = HANDOFF[1], sign: Signer | None = None) -> None:
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    if sign is not None:
        data = sign(data)
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.sendmail(sender, recipients, data)


def signer(settings: Settings, sender: str) -> Signer | None:
    """DKIM-sign the reports as dkim_sign would sign the sender's mail, if it is on."""
    from appliance import dkim_keys
    from appliance.smtpd.plugins.dkim_sign import Plugin as DkimSign

    config = settings.plugin_settings.dkim_sign
    domain = sender.rpartition("@")[2].lower()
    if not config.enabled or domain not in settings.local_domains:
        return None
    entry = settings.domains.get(domain)
    if entry is not None and not entry.dkim_signing:
        return None
    found = dkim_keys.key_for(settings.dkim_keys, domain, config.selector or dkim_keys.DEFAULT)
    if found is None:
        return None
    selector, path = found
    try:
        key = path.read_bytes()
    except OSError as e:
        log.warning("reports go out unsigned: cannot read %s: %s", path, e.strerror)
        return None
    return lambda data: DkimSign.sign(data, selector, domain, key) + data


def run(db: sqlite3.Connection, *, org_name: str, sender: str, now: int | None = None,
        host: str = HANDOFF[0], port: int = HANDOFF[1], txt: TxtLookup = _dns_txt,
        dry_run: bool = False, out: Any = None, sign: Signer | None = None) -> int:
    """Send the reports of every finished day; returns how many were sent."""
    now = int(time.time()) if now is None else now
    today = now - now % DAY
    sent = 0
    for (domain, day), items in pending(db, today).items():
        rows = [r for _, r in items]
        rua = [a for a in rows[-1].rua.split(",") if a]
        try:
            recipients = allowed_recipients(domain, rua, txt)
        except ConsentUnknown as e:
            log.warning("DMARC report for %s kept for the next run: %s", domain, e)
            continue
        ids = [rid for rid, _ in items]
        report_id = f"{day // DAY}.{uuid.uuid4().hex[:12]}@{org_name}"
        xml = build_report(rows, org_name=org_name, email=sender, domain=domain,
                           begin=day, end=day + DAY - 1, report_id=report_id)
        if dry_run:
            (out or sys.stdout).write(f"-- {domain} {day}: {len(rows)} messages -> "
                                      f"{', '.join(recipients) or 'nobody'}\n")
            (out or sys.stdout).write(xml.decode())
            continue
        if recipients:
            msg = build_message(xml, sender=sender, recipients=recipients, org_name=org_name,
                                domain=domain, begin=day, end=day + DAY - 1,
                                report_id=report_id)
            try:
                send(msg, sender, recipients, host, port, sign)
            except (OSError, smtplib.SMTPException) as e:
                log.warning("DMARC report for %s not sent, kept for the next run: %s",
                            domain, e)
                continue
            sent += 1
            log.info("DMARC report for %s (%d messages) sent to %s", domain, len(rows),
                     ", ".join(recipients))
        _delete(db, ids)
    if not dry_run:
        with db:
            db.execute("DELETE FROM messages WHERE time < ?", (today - KEEP_DAYS * DAY,))
    return sent


def _delete(db: sqlite3.Connection, ids: list[int]) -> None:
    with db:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            db.execute(f"DELETE FROM messages WHERE id IN ({', '.join('?' * len(chunk))})",
                       chunk)


def main(argv: list[str] | None = None) -> int:
    """appliance dmarc-report [--dry-run]: send yesterday's (and older) reports."""
    from appliance import paths
    from appliance.config import ConfigError, load
    from appliance.services.smtpd import settings as smtpd_settings

    ap = argparse.ArgumentParser(prog="appliance dmarc-report",
                                 description="send DMARC aggregate reports")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the reports, send and delete nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = smtpd_settings(load(paths.CONFIG))
    except ConfigError as e:
        print(f"appliance dmarc-report: {e}", file=sys.stderr)
        return 2
    config = settings.plugin_settings.dmarc
    if not config.reporting:
        log.info("DMARC reporting is off (smtpd.dmarc.reporting)")
        return 0
    sender = config.report_sender or f"postmaster@{settings.primary_domain}"
    path = Path(settings.state_dir) / DB_NAME
    if not path.exists():
        log.info("nothing recorded yet")
        return 0
    db = open_store(path)
    try:
        run(db, org_name=settings.hostname, sender=sender, dry_run=args.dry_run,
            host=settings.handoff.host, port=settings.handoff.port,
            sign=signer(settings, sender))
    finally:
        db.close()
    return 0
