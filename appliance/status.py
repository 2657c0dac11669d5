"""`appliance status`: one screen that says whether the appliance is well.

Every supervised service with its state and uptime, the queue, the data volume, the
TLS certificate's expiry and the DKIM key. `collect()` is also what the console shows.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from appliance import paths

if TYPE_CHECKING:
    from appliance.config import Config


@dataclass
class Service:
    name: str
    state: str  # RUNNING, STOPPED, FATAL, BACKOFF, ...
    detail: str  # "pid 12, uptime 1:02:03" or the error


@dataclass
class Status:
    services: list[Service] = field(default_factory=list)
    queue: dict[str, int] | None = None
    queue_error: str = ""
    disk_used: int = 0  # bytes under the data volume
    disk_free: int = 0  # bytes free on its file system
    certificate_expires: dt.datetime | None = None
    certificate_subject: str = ""
    certificate_issuer: str = ""  # tls.acme: the CA's name; self-signed: the subject
    certificate_names: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # each service's "label: value" lines
    admin: str = ""  # who gets postmaster@ and abuse@ (system.admin), as summary_lines says
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def services() -> list[Service]:
    proc = subprocess.run(["supervisorctl", "status"], capture_output=True, text=True,
                          timeout=30)
    # exit 3: some program is not RUNNING, which the list below reports by name
    if proc.returncode not in (0, 3):
        raise OSError((proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}")
    out = []
    for line in proc.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1].isupper():
            out.append(Service(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return out


DU_EVERY_S = 60.0  # the console refreshes every few seconds; du walks every mailbox
_du_cache: dict[str, tuple[float, int]] = {}


def _du(path: str) -> int:
    now = time.monotonic()
    if (cached := _du_cache.get(path)) and now - cached[0] < DU_EVERY_S:
        return cached[1]
    try:
        proc = subprocess.run(["du", "-sb", path], capture_output=True, text=True, timeout=120)
        used = int(proc.stdout.split()[0])
    except (IndexError, ValueError, OSError, subprocess.TimeoutExpired):
        used = 0  # unknown; not asked again at once either (a du that timed out is slow)
    _du_cache[path] = (now, used)
    return used


def collect() -> Status:
    from appliance import queue

    s = Status()
    try:
        s.services = services()
    except (OSError, subprocess.SubprocessError) as e:
        s.problems.append(f"supervisord does not answer: {e}")
    for svc in s.services:
        if svc.state != "RUNNING":
            s.problems.append(f"{svc.name} is {svc.state}")
    try:
        s.queue = queue.counts()
    except Exception as e:  # noqa: BLE001 - status reports, it never fails
        s.queue_error = str(e)
        s.problems.append(f"queue: {e}")
    s.disk_used = _du(str(paths.DATA))
    try:
        s.disk_free = shutil.disk_usage(paths.DATA).free
        free_known = True
    except OSError as e:
        s.problems.append(f"data volume {paths.DATA}: {e.strerror}")
        free_known = False
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(paths.TLS_CERT.read_bytes())
        s.certificate_expires = cert.not_valid_after_utc
        s.certificate_subject = cert.subject.rfc4514_string()
        s.certificate_issuer = cert.issuer.rfc4514_string()
        from appliance.certificates.renew import cert_names

        s.certificate_names = cert_names(cert)
        days = (s.certificate_expires - dt.datetime.now(dt.UTC)).days
        if days < 14:
            s.problems.append(f"the TLS certificate expires in {days} days")
    except (OSError, ValueError) as e:
        s.problems.append(f"TLS certificate unreadable: {e}")
    config = _settings(s)
    if config is not None:
        s.admin = admin_line(config)
        from appliance.config.load import reserved_name_warnings

        s.problems.extend(reserved_name_warnings(config.data))
    if config is not None and free_known and (problem := disk_problem(s.disk_free, config)):
        s.problems.append(problem)
    from appliance import certificates  # tls.acme: where it comes from, a failed order

    facts, problems = certificates.health(config)
    s.facts.extend(facts)
    s.problems.extend(problems)
    from appliance.services.registry import SERVICES

    for service in SERVICES:  # None: no configuration runs; each reports what it can
        health = service.health(config)
        s.problems.extend(health.problems)
        s.facts.extend(health.facts)
    from appliance import dns_check

    # the last `appliance dns check` of each domain: a fact, not a problem, since what
    # the world's DNS says is the admin's to change, not a fault of this box
    s.facts.extend(dns_check.status_lines())
    return s


def _settings(s: Status) -> Config | None:
    """The configuration the services run (appliance.toml, or the last good copy a boot
    fell back on), and a problem when appliance.toml is broken or not applied; None when
    none runs: the filters are then reported as if on, to say what we can anyway."""
    from appliance import recovery

    config, problem = recovery.current()
    if problem:
        s.problems.insert(0, problem)  # first: it explains what follows
    return config


def admin_line(config: Config) -> str:
    who = config.admin
    if who is None:
        return "nobody yet (the first user added becomes system.admin)"
    if not config.data["system"]["admin"]:
        return f"{who} (system.admin is not set: the first user in appliance.toml)"
    return who


def disk_problem(free: int, config: Config) -> str | None:
    """Short of Postfix's queue_minfree, every MAIL gets 452 4.3.1."""
    from appliance import limits

    needed = limits.queue_minfree(config.data["smtpd"]["max_message_size"])
    if free >= needed:
        return None
    return (f"data volume has {_size(free)} free, under the {_size(needed)} mail needs: "
            "new mail is refused (452 4.3.1) until space is freed")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} TB"


def summary_lines(s: Status) -> list[str]:
    """Queue, data volume, certificate and what each service reports, one line each (CLI
    and console)."""
    lines = []
    if s.queue is not None:
        q = s.queue
        lines.append(f"queue: {q['active']} active, {q['deferred']} deferred, "
                     f"{q['hold']} on hold, {q['incoming']} incoming")
    else:
        lines.append(f"queue: unknown ({s.queue_error})")
    lines.append(f"data volume {paths.DATA}: {_size(s.disk_used)} used, "
                 f"{_size(s.disk_free)} free")
    if s.certificate_expires:
        days = (s.certificate_expires - dt.datetime.now(dt.UTC)).days
        # one line, which fits the console beside the rest: an ACME CA may leave the
        # subject empty (the names say it all), a self-signed one is its own issuer
        names = ", ".join(s.certificate_names) or s.certificate_subject or "no names"
        issuer = "self-signed" if s.certificate_issuer == s.certificate_subject else \
            s.certificate_issuer
        lines.append(f"TLS certificate for {names}: {issuer}, expires "
                     f"{s.certificate_expires:%Y-%m-%d} (in {days} days)")
    lines += s.facts
    if s.admin:
        lines.append(f"admin (postmaster@, abuse@, dmarc-feedback@): {s.admin}")
    return lines


def format_status(s: Status) -> str:
    lines = ["services:"]
    width = max((len(x.name) for x in s.services), default=10)
    for svc in s.services:
        lines.append(f"  {svc.name:<{width}}  {svc.state:<8}  {svc.detail}")
    lines += summary_lines(s)
    lines.append("problems: " + ("none" if s.healthy else "; ".join(s.problems)))
    return "\n".join(lines) + "\n"


TAIL_BYTES = 64 * 1024


def transaction_verdict(fields: dict[str, str]) -> str:
    """What a terse log line's transaction came to. A refusal's word is its reply
    code's (a 4xx deferred, a 5xx rejected: appliance.smtpd.results.outcome), so lines
    logged before the labels followed the code read right as well."""
    from appliance.smtpd.results import outcome

    reply = fields.get("reply", "").strip('"')
    if reply[:1] in ("4", "5"):
        return outcome(reply)
    return fields.get("verdict", "?")


def recent_transactions(n: int = 10) -> list[str]:
    """The last N terse lines of the SMTP daemons (accepted and refused mail), oldest
    first, from the files they keep beside their stdout."""
    lines: list[str] = []
    for f in sorted(paths.TERSE_LOG_DIR.glob("smtpd-*.log*")):
        try:
            with f.open("rb") as fh:  # only the end: the files grow to 1 MB each
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - TAIL_BYTES))
                tail = fh.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        lines.extend(tail[1:] if len(tail) > n else tail)  # the first may be cut
    return sorted(lines)[-n:]  # each line starts with its ISO timestamp
