"""`appliance scheduler`: the appliance's periodic jobs, run by supervisord.

Each job is an `appliance` sub-command run at its interval; the time of its last run
is kept on the volume, so a restart neither repeats a daily job nor skips it for a day.
A failing job is logged and tried again at its next turn; it never stops the others.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance import paths

# the name the log has always shown (README), kept when the module moved
log = logging.getLogger("appliance.scheduler")

STATE = paths.DATA / "scheduler.json"
TICK_S = 60
LEARN_EVERY_S = 3600  # LearnAsSpam/LearnAsHam are emptied within the hour
CERT_EVERY_S = 900  # tls.acme: is a renewal due (appliance/certificates/renew.py)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: int
    argv: tuple[str, ...]


JOBS = (
    # SME DMARCReporting: aggregate reports to the rua addresses once a day.
    Job("dmarc-report", 86400, ("dmarc-report",)),
    # what the world's DNS says of each domain, for `appliance status` and the console
    Job("dns-check", 86400, ("dns", "check", "--all")),
)


def jobs(now: float, config_path: Path = paths.CONFIG) -> tuple[Job, ...]:
    """The fixed jobs, plus those appliance.toml asks for, read every tick: retrieval at
    the interval of the current period (SME's office hours, outside them, weekend), the
    Bayes learner, and junkmail expiry."""
    from appliance.config import ConfigError, load
    from appliance.services.fetchmail import poll as fetchmail

    try:
        config = load(config_path)
    except ConfigError as e:
        log.error("only the fixed jobs run: %s", e)
        return JOBS
    extra = []
    every = fetchmail.interval(config, datetime.fromtimestamp(now))
    if every:
        extra.append(Job("fetchmail", every, ("fetchmail",)))
    spam = config.data["spamassassin"]
    if spam["enabled"] and spam["use_bayes"]:
        extra.append(Job("spam-learn", LEARN_EVERY_S, ("spam", "learn")))
    if spam["message_retention_days"]:
        extra.append(Job("junkmail-expire", 86400, ("spam", "expire-junkmail")))
    if config.data["tls"]["acme"]:  # cheap when not due; the backoff is its own
        extra.append(Job("cert-renew", CERT_EVERY_S, ("cert", "renew", "--if-due")))
    return JOBS + tuple(extra)


def _load(path: Path) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def due(jobs: tuple[Job, ...], last: dict[str, float], now: float) -> list[Job]:
    return [j for j in jobs if now - last.get(j.name, 0.0) >= j.every_s]


def run_once(todo: tuple[Job, ...] | None = None, state: Path = STATE,
             now: float | None = None) -> list[tuple[str, int]]:
    now = time.time() if now is None else now
    last = _load(state)
    results = []
    for job in due(jobs(now) if todo is None else todo, last, now):
        exe = str(Path(sys.executable).with_name("appliance"))
        try:
            proc = subprocess.run([exe, *job.argv], capture_output=True, text=True,
                                  timeout=3600, check=False)
            code = proc.returncode
            out = (proc.stdout + proc.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            code, out = -1, str(e)
        (log.info if code == 0 else log.error)("%s exited %d%s", job.name, code,
                                                f": {out[-500:]}" if out else "")
        last[job.name] = now
        results.append((job.name, code))
    if results:
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps(last))
        tmp.replace(state)
    return results


def run(args: argparse.Namespace) -> int:
    """Run the jobs as they fall due until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    log.info("running %s", ", ".join(f"{j.name} every {j.every_s}s" for j in jobs(time.time())))
    while not stop:
        run_once()
        for _ in range(TICK_S):
            if stop:
                break
            time.sleep(1)
    return 0
