"""The transaction log: one terse line per transaction (qpsmtpd's logterse style).

    smtp 198.51.100.7 helo=mx.example.org tls=TLSv1.3 from=<a@example.org>
    to=<bob@example.com> size=1234 id=4F2A1B verdict=queued ms=212 t=spf:3.1,dkim:8.0

(one line). Fields, in this order and only when they apply: daemon, client address,
helo, auth (the logged-in user), tls (its version), from, to (accepted recipients or
"-"), refused (<recipient>:plugin for each refused one), size, id (Postfix's queue
id), verdict (queued, deferred, rejected, aborted), by and reply (the plugin that
decided and its reply code), naughty (the plugin that marked the client), ms (since
MAIL, or since connect for a connection refused before one), t (per-plugin
milliseconds since the previous line). `appliance status` and the console read these
lines back (the verdict and reply fields) from FOLDER/smtpd-<daemon>.log.
"""

from __future__ import annotations

import logging
import os
import pwd
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

from appliance.smtpd.hooks import Connection, Transaction
from appliance.smtpd.results import Result, outcome

LOGGER = "appliance.smtpd.transaction"
FILE_BYTES = 1_000_000  # per daemon, one old file kept: the console shows the last lines

terse = logging.getLogger(LOGGER)


def line(conn: Connection, txn: Transaction | None, verdict: str, result: Result | None,
         now: float | None = None) -> str:
    """The log line; takes (and clears) the connection's plugin timings."""
    now = time.monotonic() if now is None else now
    parts = [conn.daemon, conn.remote_ip, f"helo={conn.helo or '-'}"]
    if conn.authenticated:
        parts.append(f"auth={conn.auth_user}")
    if conn.tls:
        parts.append(f"tls={conn.tls_version or 'yes'}")
    if txn is not None:
        parts.append(f"from=<{txn.sender}>")
        parts.append("to=" + (",".join(f"<{r}>" for r in txn.recipients) or "-"))
        if txn.rejected:
            parts.append("refused=" + ",".join(f"<{r}>:{p}" for r, p, _ in txn.rejected))
        if txn.data:
            parts.append(f"size={len(txn.data)}")
        if txn.queue_id:
            parts.append(f"id={txn.queue_id}")
        ms = (now - txn.started) * 1000
    else:
        ms = (now - conn.started) * 1000
    if result is not None:
        verdict = result.outcome  # a 4xx is deferred, a 5xx rejected, whoever asks
    parts.append(f"verdict={verdict}")
    if result is not None:
        parts.append(f"by={result.plugin or '-'}")
        parts.append(f'reply="{result.reply[:3]}"')
    if conn.naughty is not None:
        parts.append(f"naughty={conn.naughty[1]}")
    parts.append(f"ms={ms:.0f}")
    if conn.timings:
        # per-plugin milliseconds since the last line: where the time goes
        parts.append("t=" + ",".join(f"{k}:{v * 1000:.1f}" for k, v in conn.timings.items()))
        conn.timings.clear()
    return " ".join(parts)


def write(conn: Connection, txn: Transaction | None, verdict: str,
          result: Result | None) -> None:
    """Log the line for a transaction that ended (or a connection refused early)."""
    terse.info(line(conn, txn, verdict, result))


def end_transaction(conn: Connection, verdict: str) -> None:
    """Close the open transaction, if any, and log it (RSET, a new MAIL or HELO, the
    end of the connection: `verdict` is then "aborted")."""
    txn, conn.transaction = conn.transaction, None
    if txn is None:
        return
    if txn.rejected and not txn.recipients:
        # every recipient refused (relaying denied, greylisted): rejected when every
        # refusal was for good, deferred when the client may come back
        verdict = outcome("", temporary=any(reply[:1] == "4" for _, _, reply in txn.rejected))
    write(conn, txn, verdict, None)


def to_file(folder: str, name: str, owner: str) -> None:
    """Also write the lines to FOLDER/smtpd-NAME.log, which the console reads (the
    container's stdout is not readable from inside). Rotation renames in FOLDER, so the
    daemon's user owns it."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    log_file = path / f"smtpd-{name}.log"
    log_file.touch()
    if os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        for p in (path, log_file):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    handler = RotatingFileHandler(log_file, maxBytes=FILE_BYTES, backupCount=1)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    terse.addHandler(handler)
