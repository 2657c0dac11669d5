"""`appliance fetchmail`: retrieve mail from the secondary server now; and when to.

The scheduler calls this at the interval of the current period: SME's office hours
(08:00-18:00 Monday to Friday), outside them, and the weekend, each with its own
frequency. Times are the container's local time (TZ).
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import datetime

from appliance import paths
from appliance.config import Config
from appliance.config.schema import FETCH_FREQUENCIES
from appliance.services.fetchmail import GROUP, RC, USER, active

log = logging.getLogger("appliance.fetchmail")

OFFICE_HOURS = range(8, 18)  # 08:00 up to 18:00
HOME = "/var/lib/fetchmail"  # the fetchmail user's home: its pid and id files
TIMEOUT_S = 1800
# fetchmail's exit codes that are not failures: 0 mail retrieved, 1 none waiting
SUCCESS = (0, 1)


def period(when: datetime) -> str:
    if when.weekday() >= 5:
        return "weekend"
    return "office" if when.hour in OFFICE_HOURS else "outside"


def interval(config: Config, when: datetime) -> int | None:
    """Seconds between retrievals at `when`, or None when nothing is to be retrieved."""
    if not active(config):
        return None
    return FETCH_FREQUENCIES[config.data["fetchmail"][f"freq_{period(when)}"]]


def run(config: Config) -> int:
    """One fetchmail run, as the fetchmail user; 0 when it worked (mail or not)."""
    if not active(config):
        print("fetchmail: retrieval is off (fetchmail.enabled and fetchmail.method)")
        return 0
    argv = ["fetchmail", "--nodetach", "--nosyslog", "-v", "-f", str(paths.ROOT / RC.lstrip("/"))]
    env = {"HOME": HOME, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    root = os.geteuid() == 0  # else (tests) as whoever runs it
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=TIMEOUT_S, check=False, user=USER if root else None,
                              group=GROUP if root else None)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"fetchmail: could not run: {e}")
        return 1
    secret = config.data["fetchmail"]["password"]
    for line in (proc.stdout + proc.stderr).splitlines():  # the verbose transcript
        line = line.removeprefix("fetchmail: ")
        print(f"fetchmail: {line.replace(secret, '*') if secret else line}")
    if proc.returncode in SUCCESS:
        return 0
    print(f"fetchmail: failed with exit {proc.returncode} (see fetchmail(1), EXIT CODES)")
    return 1
