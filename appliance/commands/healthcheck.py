"""`appliance healthcheck`, the container healthcheck: the appliance is healthy when it
would take mail and logins.

It runs every 5 seconds, so it must not write to the log each time: Postfix logs every
connection (connect, disconnect) and Dovecot every IMAP session, which made about 35 log
lines a minute out of nothing. So:

- our SMTP daemon on 25 gets a real EHLO and NOOP (it logs transactions, not sessions);
- Postfix's hand-off (127.0.0.1:10025) and Dovecot's IMAP (143) are checked for a
  listening socket in the kernel's table, without connecting: each is held open by the
  service's master process, so it is gone when the service is;
- Dovecot's master is asked, over its own socket (`doveadm service status`), whether it
  runs the IMAP login service, which a connection would be handed to.

Short timeouts everywhere: a hung service fails the check rather than hanging it.
"""

from __future__ import annotations

import argparse
import ipaddress
import smtplib
import subprocess
import sys
from pathlib import Path

from appliance.paths import HANDOFF_ADDRESS

TIMEOUT_S = 5.0
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN = "0A"  # TCP_LISTEN in the kernel's st column


def check_smtp(port: int = 25) -> str | None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT_S) as s:
            code, _ = s.ehlo("healthcheck.invalid")
            if code != 250:
                return f"SMTP {port}: EHLO answered {code}"
            s.noop()
    except (OSError, smtplib.SMTPException) as e:
        return f"SMTP {port}: {e}"
    return None


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: 32-bit words printed in host byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(int.from_bytes(raw[i:i + 4], "big").to_bytes(4, sys.byteorder)
                     for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening(port: int, host: str = "127.0.0.1", tables: tuple[Path, ...] = TCP_TABLES,
              ) -> bool:
    """Whether a TCP socket listens where a client connecting to host:port arrives: on
    that address or on every address (0.0.0.0, ::). Read from the kernel's table, so the
    service sees no connection and logs nothing."""
    target = ipaddress.ip_address(host)
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue  # no IPv6 in this network namespace
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) != port:
                continue
            local = _address(address)
            if local.is_unspecified or local == target:
                return True
    return False


def check_handoff(port: int = HANDOFF_ADDRESS[1]) -> str | None:
    if not listening(port):
        return f"Postfix hand-off 127.0.0.1:{port}: nothing listens"
    return None


def check_imap(port: int = 143) -> str | None:
    if not listening(port):
        return f"IMAP {port}: nothing listens"
    # The master answers for its login service: asked over Dovecot's own admin socket,
    # which logs nothing (an IMAP session logs its disconnect, login or not).
    try:
        proc = subprocess.run(["doveadm", "service", "status", "imap-login"],
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"IMAP {port}: Dovecot's master does not answer: {e}"
    if proc.returncode != 0 or "imap-login" not in proc.stdout:
        reason = (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
        return f"IMAP {port}: Dovecot's master does not answer: {reason}"
    status = dict(line.partition(": ")[::2] for line in proc.stdout.splitlines())
    if status.get("listening") != "y":
        return f"IMAP {port}: Dovecot's imap-login does not listen"
    if status.get("throttle_secs", "0") != "0":  # its processes keep failing to start
        return f"IMAP {port}: Dovecot throttles imap-login: it keeps failing"
    return None


def problems(imap_enabled: bool = True) -> list[str]:
    checks = [check_smtp(), check_handoff()]
    if imap_enabled:
        checks.append(check_imap())
    return [p for p in checks if p]


def run(args: argparse.Namespace) -> int:
    """Exit 0 and print "healthy", or exit 1 with each problem on stderr."""
    from appliance import recovery

    # a broken appliance.toml fails the check, named, while the last good one is probed
    config, problem = recovery.current()
    found = [problem] if problem else []
    if config is not None:
        smtp = config.data["smtpd"]["smtp"]
        found += [
            p for p in (
                check_smtp(smtp["port"]) if smtp["enabled"] else None,
                check_handoff(),
                check_imap() if config.data["imap"]["enabled"] else None,
            ) if p
        ]
    for p in found:
        print(p, file=sys.stderr)
    if not found:
        print("healthy")
    return 1 if found else 0
