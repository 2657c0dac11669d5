"""loadcheck: defers mail from outside while this container is overloaded (SME MaxLoad,
qpsmtpd loadcheck).

When the load is above `max_load`, new connections get 451 before the greeting: senders
retry later, and the load they would add (DNS lists, content checks) goes to a calmer
moment. Trusted clients (relay clients, whitelisted hosts) are still served; the local
networks do not run this plugin at all.

The load is this container's, not the host's: a container shares the kernel, so
os.getloadavg() counts every process of a busy host (load 8 on 2 cores deferred all mail
of an idle appliance). Where the kernel keeps pressure stall information for our cgroup
(cgroup v2, `cpu.pressure`), we read `some avg10`, the share p of the last 10 s in which
some runnable task of ours waited for a CPU, and turn it into a load-equivalent with the
CPUs we may use, N (the `cpu.max` quota, or cgroup v1's CFS quota, else the CPUs we
may run on):

    load = N * p / (1 - p)

As a queue: nothing waiting is 0, tasks waiting half the time is N (as a load average
of N on N CPUs, each busy with a task waiting behind it), and it grows without bound as
waiting becomes constant; SME's MaxLoad 7 on 2 CPUs defers above p = 7/9. Without PSI
(cgroup v1, a kernel booted with psi=0) the host's 1-minute load average is scaled to
our share of the machine (load * N / host CPUs), the best figure left, though it
still counts the host's processes; with no load figure at all, mail is never deferred.
PSI measures stalls only: tasks blocked on disk, which the load average counts, do not
defer mail.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, denysoft
from appliance.smtpd.settings import Settings

CGROUP = Path("/sys/fs/cgroup")  # our own cgroup, as a container sees it (cgroup v2)
MAX_PRESSURE = 0.999  # p = 1 would be an infinite load


def _quota(cgroup: Path) -> tuple[str, str] | None:
    """(quota, period) of cgroup v2's cpu.max, or of v1's cpu controller."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return quota, period
    except (OSError, ValueError):
        pass
    try:
        return ((cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip(),
                (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip())
    except OSError:
        return None


def usable_cpus(cgroup: Path) -> float:
    """The CPUs this container may use: its CPU quota, else its CPU affinity."""
    quota = _quota(cgroup)
    try:
        if quota is not None and quota[0] not in ("max", "-1") and float(quota[1]) > 0:
            return max(float(quota[0]) / float(quota[1]), 0.01)
    except ValueError:
        pass
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def cpu_pressure(cgroup: Path) -> float | None:
    """`some avg10` of cpu.pressure as a fraction, or None when there is none."""
    try:
        text = (cgroup / "cpu.pressure").read_text()
    except OSError:  # absent (cgroup v1), or EOPNOTSUPP with psi=0
        return None
    for line in text.splitlines():
        kind, *fields = line.split()
        if kind == "some":
            values = dict(f.split("=", 1) for f in fields if "=" in f)
            try:
                return min(max(float(values["avg10"]) / 100, 0.0), MAX_PRESSURE)
            except (KeyError, ValueError):
                return None
    return None


class Plugin(BasePlugin):
    name = "loadcheck"
    cgroup = CGROUP  # tests point it at a folder of their own files
    getloadavg = staticmethod(os.getloadavg)

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.max_load = settings.plugin_settings.loadcheck.max_load  # >= 1 (the schema)

    def load(self) -> tuple[float, str] | None:
        """This container's load-equivalent and where it came from, or None."""
        cpus = usable_cpus(self.cgroup)
        pressure = cpu_pressure(self.cgroup)
        if pressure is not None:
            return cpus * pressure / (1 - pressure), f"cpu pressure {pressure:.0%}"
        try:
            host = self.getloadavg()[0]
        except OSError:
            return None
        return host * cpus / (os.cpu_count() or 1), f"host load {host:.2f}"

    async def hook_connect(self, conn: Connection) -> Result | None:
        if conn.trusted:
            return None
        measured = self.load()
        if measured is not None and measured[0] > self.max_load:
            self.log.info("%s: deferred, load %.2f (%s) > %s", conn.remote_ip, measured[0],
                          measured[1], self.max_load)
            return denysoft(replies.SERVER_BUSY)
        return None
