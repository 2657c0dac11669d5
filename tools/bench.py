#!/usr/bin/env python3
"""`make bench`: SMTP intake through our full pipeline vs Postfix alone, side by side.

Inside a throwaway container (compose project "appliance-bench", with the e2e test
network: its DNS server answers every lookup), Postfix's smtp-source sends MESSAGES
messages of SIZE bytes over SESSIONS parallel sessions, one message per connection, to
port 25 (our daemon: the default *internet* plugin chain + hand-off to Postfix) and to
127.0.0.1:10025 (Postfix's smtpd directly). Loopback is taken out of the local networks
so smtp-source gets the internet chain (HELO, sender-domain, SPF, DKIM, DMARC lookups
through the test DNS), then the content filters: SpamAssassin's spamd and ClamAV's clamd
(with the tests' one-signature database: no internet here for freshclam). Rounds
alternate so machine noise hits both alike; the ratio of median rates is the number to
watch. Postfix alone scans nothing, so with spamd in the chain the ratio says what the
content filters cost. Also prints where the time goes per plugin (from the terse log)
and the RSS of each SMTP daemon, of spamd and of clamd. Then the same comparison with
the content filters switched off (three times the messages): what our daemon and its
plugins cost against Postfix alone.

Then the soak (--soak-minutes, 30 by default; 0 skips it): smtp-source keeps port 25
busy while the memory and open file descriptors of every long-running process are sampled
each --sample-seconds; the curve is printed, with the drift between the first and the
last fifth of the run, and every acknowledged message is counted in the mailbox.
Memory there is PSS (shared pages split between the processes that map them), read
from the host's /proc, so `make bench` runs as root.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = Path("/tmp/appliance-bench")
os.environ["E2E_STATE"] = str(STATE)  # compose.e2e.yaml mounts it into the DNS server
COMPOSE = ["docker", "compose", "-p", "appliance-bench", "-f", str(ROOT / "compose.yaml"),
           "-f", str(ROOT / "tests/e2e/compose.e2e.yaml")]
TOML = "/var/lib/appliance/appliance.toml"


def sh(*args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, input=input, timeout=1800)
    if check and proc.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def ex(*cmd: str, input: str | None = None) -> str:
    return sh(*COMPOSE, "exec", "-T", "appliance", *cmd, input=input)


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    sys.exit(f"bench: timed out waiting for {what}")


def queue_empty() -> bool:
    return ex("postqueue", "-j").strip() == ""


def run_source(port: int, messages: int, sessions: int, size: int, drain: bool = True) -> float:
    """Messages per second accepted on `port` (smtp-source exits after the last 250)."""
    cmd = ["smtp-source", "-l", str(size), "-m", str(messages), "-s", str(sessions),
           "-f", "bench@remote.test", "-t", "bench@example.com", f"127.0.0.1:{port}"]
    if drain:
        wait_for(queue_empty, 600, "the queue to drain between rounds")
    start = time.perf_counter()
    out = subprocess.run([*COMPOSE, "exec", "-T", "appliance", *cmd], capture_output=True,
                         text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if out.returncode != 0 or "error" in (out.stdout + out.stderr).lower():
        sys.exit(f"bench: smtp-source on {port} failed:\n{out.stdout}{out.stderr}")
    return messages / elapsed


def time_share() -> str:
    """Sum the per-plugin milliseconds (`t=`) of every accepted transaction."""
    logs = sh("docker", "logs", ex_container(), check=False)
    totals: dict[str, float] = {}
    n = 0
    for line in logs.splitlines():
        if "appliance.smtpd.transaction: smtp " not in line or "verdict=queued" not in line:
            continue
        n += 1
        m = re.search(r" t=(\S+)", line)
        for part in (m.group(1).split(",") if m else []):
            name, _, ms = part.rpartition(":")
            totals[name] = totals.get(name, 0.0) + float(ms)
    whole = sum(totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    return "\n".join(f"  {name:28s} {ms / n:8.3f} ms/msg  {100 * ms / whole:5.1f} %"
                     for name, ms in rows) + f"\n  ({n} messages)"


# Memory (KiB) and open descriptors per supervised program, summed over its process
# tree (spamd, Postfix and Dovecot fork children), read from the host's /proc: root in
# the container lacks CAP_SYS_PTRACE, so it cannot read the /proc entries of daemons that
# changed user. Memory is PSS, RSS with shared pages split between their users, so a sum
# over processes that share libraries is not counted many times over.
SOAKED = ["smtpd-smtp", "smtpd-smtps", "smtpd-submission", "postfix", "dovecot", "spamd",
          "clamd", "unbound", "scheduler"]


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            kids = Path(f"/proc/{pid}/task/{t}/children").read_text().split()
        except OSError:
            continue
        for k in kids:
            out += _tree(int(k))
    return out


def _measure(pids: list[int]) -> tuple[int, int, int]:
    """PSS, its anonymous part (heap and stacks: where a leak shows; the rest is mapped
    files such as Dovecot's indexes, which grow with the mailboxes), descriptors."""
    pss = anon = fds = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Pss_Anon:"):
                    anon += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass  # exited meanwhile
    return pss, anon, fds


def sample() -> dict[str, tuple[int, int, int]]:
    status = sh(*COMPOSE, "exec", "-T", "appliance", "supervisorctl", "status", check=False)
    inside = {m.group(1): int(m.group(2)) for m in
              re.finditer(r"^(\S+)\s+RUNNING\s+pid (\d+),", status, re.MULTILINE)}
    init = int(sh("docker", "inspect", "-f", "{{.State.Pid}}", ex_container()).strip())
    host = {}  # container pid -> host pid (the last NSpid is the container's own)
    for hp in _tree(init):
        try:
            for line in Path(f"/proc/{hp}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    host[int(line.split()[-1])] = hp
        except OSError:
            pass
    return {name: _measure(_tree(host[inside[name]])) for name in SOAKED
            if name in inside and inside[name] in host}


def inbox_count(user: str) -> int:
    out = ex("doveadm", "mailbox", "status", "-u", user, "messages", "INBOX")
    return int(out.split("=")[1])


def soak(minutes: float, every: float, sessions: int, size: int) -> None:
    """Port 25 under steady load for `minutes`; the RSS/fd curve and the drift."""
    print(f"\nsoak: {minutes:g} min of smtp-source on port 25 ({sessions} sessions, "
          f"{size} B), sampled every {every:g} s")
    wait_for(queue_empty, 600, "the queue to drain before the soak")
    before = inbox_count("bench")
    samples: list[tuple[float, int, dict[str, tuple[int, int, int]]]] = []
    sent = 0
    start = time.monotonic()
    deadline = start + minutes * 60
    next_sample = start
    while True:
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - start, sent, sample()))
            next_sample += every
            t, n, m = samples[-1]
            print(f"  {t / 60:5.1f} min {n:7d} sent  " + "  ".join(
                f"{k.removeprefix('smtpd-')} {v[0] / 1024:.0f}M({v[1] / 1024:.0f})/{v[2]}fd"
                for k, v in m.items()), flush=True)
        if now >= deadline:
            break
        batch = 100  # acknowledged by smtp-source, which fails on any non-250
        run_source(25, batch, sessions, size, drain=False)
        sent += batch
    wait_for(queue_empty, 900, "the queue to drain after the soak")
    delivered = inbox_count("bench") - before
    print(f"soak: {sent} messages acknowledged with 250, {delivered} delivered to the "
          f"mailbox ({sent / (minutes * 60):.1f} msg/s)")
    fifth = max(1, len(samples) // 5)
    print("drift, mean of the last fifth vs the first (PSS, its anonymous part, open "
          "descriptors):")
    for name in samples[0][2]:
        def mean(rows, i, name=name):
            vals = [m[name][i] for _, _, m in rows if name in m]
            return statistics.mean(vals) if vals else 0
        first, last = samples[:fifth], samples[-fifth:]
        r0, r1 = mean(first, 0), mean(last, 0)
        a0, a1 = mean(first, 1), mean(last, 1)
        f0, f1 = mean(first, 2), mean(last, 2)
        peak = max(m[name][0] for _, _, m in samples if name in m)
        print(f"  {name:17s} PSS {r0 / 1024:6.1f} -> {r1 / 1024:6.1f} MiB "
              f"({(r1 - r0) / max(r0, 1) * 100:+5.1f}%, peak {peak / 1024:.1f})  "
              f"anon {a0 / 1024:6.1f} -> {a1 / 1024:6.1f} MiB  fds {f0:5.1f} -> {f1:5.1f}")


def compare(rounds: int, messages: int, sessions: int, size: int) -> None:
    """Alternating rounds, port 25 (the pipeline) and 10025 (Postfix alone)."""
    pipeline, direct = [], []
    for r in range(rounds):
        direct.append(run_source(10025, messages, sessions, size))
        pipeline.append(run_source(25, messages, sessions, size))
        print(f"  round {r + 1}: postfix direct {direct[-1]:7.1f} msg/s   "
              f"pipeline {pipeline[-1]:7.1f} msg/s   ratio {pipeline[-1] / direct[-1]:.3f}")
    d, p = statistics.median(direct), statistics.median(pipeline)
    print(f"  {messages} messages x {size} B, {sessions} sessions, one message per "
          f"connection, {rounds} alternating rounds")
    print(f"  postfix direct (10025): {d:7.1f} msg/s (median)")
    print(f"  full pipeline  (25):    {p:7.1f} msg/s (median)")
    print(f"  ratio pipeline/direct:  {p / d:.3f}")


def content_filters_ready() -> bool:
    return subprocess.run([*COMPOSE, "exec", "-T", "appliance", "appliance", "status"],
                          capture_output=True).returncode == 0


def ready(sessions: int, size: int) -> None:
    """After a settings change: status clean, port 25's daemon back, a warm-up through
    it (smtp-source fails on anything but 250)."""
    wait_for(content_filters_ready, 180, "spamd and clamd to answer")
    wait_for(lambda: "RUNNING" in ex("supervisorctl", "status", "smtpd-smtp"), 60,
             "smtpd-smtp to restart")
    time.sleep(2)  # let the restarted daemon bind
    run_source(25, 200, sessions, size)


def filters(on: bool, sessions: int, size: int) -> None:
    value = "true" if on else "false"
    ex("appliance", "config", "set", "spamassassin.enabled", value)
    ex("appliance", "config", "set", "clamav.enabled", value)
    ready(sessions, size)


def ex_container() -> str:
    return sh(*COMPOSE, "ps", "-q", "appliance").strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=20480, help="bytes per message")
    ap.add_argument("--rounds", type=int, default=3, help="0: skip to the soak")
    ap.add_argument("--soak-minutes", type=float, default=30.0,
                    help="steady load afterwards, sampling RSS and descriptors (0: none)")
    ap.add_argument("--sample-seconds", type=float, default=60.0)
    ap.add_argument("--keep", action="store_true", help="leave the bench container running")
    a = ap.parse_args()
    if a.soak_minutes > 0 and os.geteuid() != 0:
        # without root the host's /proc of the container's daemons reads as nothing
        sys.exit("bench: the soak reads the daemons' /proc from the host: run it as root")

    sh(*COMPOSE, "down", "-v", "--remove-orphans", check=False)
    sys.path.insert(0, str(ROOT))
    from tests.e2e.conftest import CLAMAV_DB, TEST_SIGNATURES, TestDNS

    (STATE / "sink").mkdir(parents=True, exist_ok=True)
    TestDNS(STATE / "zones.json").base()
    sh(*COMPOSE, "up", "-d", "--wait", "--wait-timeout", "240")
    try:
        ex("appliance", "user", "add", "bench", "--password-stdin", input="bench-password\n")
        # smtp-source connects from 127.0.0.1: allow its parallel sessions from one
        # address, and make loopback the internet so it gets the full spam-check chain.
        ex("appliance", "config", "set", "network.local_networks", "")
        ex("appliance", "config", "set", "smtpd.smtp.instances_per_ip", "40")
        # The load generator shares this machine: loadcheck (SME MaxLoad 7) would measure
        # the benchmark itself and defer it. Everything else stays at its default.
        ex("appliance", "config", "set", "smtpd.loadcheck.max_load", "1000")
        ex("sh", "-c", f"cat > {CLAMAV_DB}/{TEST_SIGNATURES.name}",
           input=TEST_SIGNATURES.read_text())
        ready(a.sessions, a.size)
        run_source(10025, 200, a.sessions, a.size)

        if a.rounds > 0:  # 0: only the soak
            print("with the content filters (the default: spamd and clamd scan internet mail)")
            compare(a.rounds, a.messages, a.sessions, a.size)
            print("\nwhere the pipeline's time goes (terse log, all rounds):")
            print(time_share())
            print("\nRSS of the SMTP daemons:")
            print(ex("ps", "-o", "rss=,args=", "-u", "qpsmtpd").rstrip().replace(
                "/opt/appliance/bin/python3 /opt/appliance/bin/appliance ", "  KiB  "))
            print("\nRSS of the content filters (KiB):")
            print(ex("ps", "-o", "rss=,args=", "-C", "spamd,clamd").rstrip())

            # Our daemon and its plugins against Postfix alone: what the SMTP side costs.
            filters(False, a.sessions, a.size)
            print("\nwithout them (spamassassin.enabled and clamav.enabled false)")
            compare(a.rounds, a.messages * 3, a.sessions, a.size)
            filters(True, a.sessions, a.size)
        if a.soak_minutes > 0:
            soak(a.soak_minutes, a.sample_seconds, a.sessions, a.size)
    finally:
        if not a.keep:
            sh(*COMPOSE, "down", "-v", "--remove-orphans", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
