"""End-to-end fixtures: the real container from compose.yaml, project "appliance-e2e".

The overlay (compose.e2e.yaml) publishes no host ports: tests talk to the container's
address on the project's bridge network, arriving from the bridge gateway, which the
appliance must treat as the internet. Docker missing is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "appliance-e2e"
COMPOSE = [
    "docker", "compose", "-p", PROJECT,
    "-f", str(ROOT / "compose.yaml"), "-f", str(ROOT / "tests/e2e/compose.e2e.yaml"),
]
UP_TIMEOUT_S = 240
ALICE_PASSWORD = "Alice-e2e-passw0rd"
DOMAIN = "example.com"

# The test network (compose.e2e.yaml): where each party is.
STATE = Path(os.environ.get("E2E_STATE", "/tmp/appliance-e2e"))
CLIENT_IP = "198.51.100.1"  # the host's address there: our clients come from the internet
APPLIANCE_IP = "198.51.100.10"
DNS_IP = "198.51.100.53"
DNS2_IP = "198.51.100.54"  # a second DNS server: names only it knows (zones2.json)
SINK_IP = "198.51.100.26"
NOWHERE_IP = "198.51.100.99"  # nothing listens: mail for it stays queued
# The same parties over IPv6 (the network is dual-stack, 2001:db8:100::/64)
CLIENT_IP6 = "2001:db8:100::1"
APPLIANCE_IP6 = "2001:db8:100::10"
DNS_IP6 = "2001:db8:100::53"
SINK_IP6 = "2001:db8:100::26"
CLAMAV_DB = "/var/lib/appliance/clamav"


class TestDNS:
    __test__ = False  # a helper, not a test class

    """The records the test DNS server serves; every change is written at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, dict[str, list[str]]] = {}
        self.drop: list[str] = []
        self.signed: list[str] = []  # zones answered with DNSSEC (peers/dnssign.py)

    def set(self, name: str, rdtype: str, *values: str) -> None:
        self.names.setdefault(name.lower(), {})[rdtype] = list(values)
        self.write()

    def remove(self, name: str, rdtype: str | None = None) -> None:
        if rdtype is None:
            self.names.pop(name.lower(), None)
        else:
            self.names.get(name.lower(), {}).pop(rdtype, None)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"names": self.names, "drop": self.drop,
                                   "signed": self.signed}, indent=1))
        tmp.replace(self.path)

    def base(self) -> None:
        """Zones every test can rely on (see each test module for its own)."""
        a = {"A": []}
        for name in ("remote.test", "sender.test", "spammer.test", "elsewhere.test",
                     "client.test", "laptop.test", "probe.test"):
            self.names[name] = {"MX": ["10 sink.remote.test."], "A": [SINK_IP],
                                "TXT": [f"v=spf1 ip4:{CLIENT_IP} ~all"]}
        self.names["sink.remote.test"] = {"A": [SINK_IP]}
        self.names["unreachable.test"] = {"MX": ["10 mx.unreachable.test."]}
        self.names["mx.unreachable.test"] = {"A": [NOWHERE_IP]}
        del a
        self.drop = ["timeout.test"]
        self.write()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as e:  # the condition's own errors mean "not yet"
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Appliance:
    container: str
    ip: str
    command: tuple[str, ...] = tuple(COMPOSE)  # `docker compose -p … -f …` of its project

    def compose(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, *args], capture_output=True, text=True,
                              check=check, input=input, timeout=timeout)

    def exec(self, *cmd: str, input: str | None = None, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = self.compose("exec", "-T", "appliance", *cmd, check=False, input=input,
                            timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return proc

    def queue(self) -> list[dict[str, Any]]:
        out = self.exec("postqueue", "-j").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def refresh_ip(self) -> None:
        self.ip = container_ip(self.container)

    def wait_healthy(self, timeout: float = UP_TIMEOUT_S) -> None:
        def healthy() -> bool:
            state = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", self.container],
                capture_output=True, text=True, check=False,
            ).stdout.strip()
            return state == "healthy"

        wait_for(healthy, timeout, "the container to be healthy", every=1)
        self.refresh_ip()


def rcpt_answer(ip: str, recipient: str, port: int = 25) -> tuple[int, bytes]:
    with smtplib.SMTP(ip, port, timeout=10) as s:
        s.ehlo("probe.test")
        s.mail("probe@remote.test")
        return s.rcpt(recipient)


def container_ip(container: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f",
         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def sink_messages(recipient: str | None = None) -> list[bytes]:
    """What the remote server (sink) has received, optionally only for one recipient."""
    out = []
    for path in sorted((STATE / "sink").glob("*.eml"), key=lambda p: p.stat().st_mtime):
        data = path.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        if recipient is None or f"<{recipient}>".encode() in head.split(b"X-Sink-To:", 1)[-1]:
            out.append(data)
    return out


TEST_SIGNATURES = Path(__file__).parent / "clamav" / "appliance-test.ndb"


def install_test_signatures(app: Appliance) -> None:
    """There is no internet here for freshclam: the tests bring a ClamAV database of
    their own, one signature for the EICAR test file."""
    app.exec("sh", "-c", f"cat > {CLAMAV_DB}/{TEST_SIGNATURES.name}",
             input=TEST_SIGNATURES.read_text())


@pytest.fixture(scope="session")
def zones() -> TestDNS:
    return _zones


_zones = TestDNS(STATE / "zones.json")


@pytest.fixture(scope="session")
def appliance() -> Iterator[Appliance]:
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed: the e2e tests need it (run `make e2e`)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers: {info.stderr.strip()} (run `make e2e`)")
    subprocess.run([*COMPOSE, "down", "-v", "--remove-orphans"], capture_output=True,
                   check=False, timeout=UP_TIMEOUT_S)
    shutil.rmtree(STATE, ignore_errors=True)
    (STATE / "sink").mkdir(parents=True)
    _zones.base()
    os.environ["E2E_STATE"] = str(STATE)  # compose.e2e.yaml mounts it into the peers
    app = start_appliance(COMPOSE)
    # Every test's client is the host, and many fail a login on purpose: the failed-login
    # delays and bans would spill from one test into the next. The ban tests lift this.
    app.exec("appliance", "config", "set", "security.never_ban", f"{CLIENT_IP}/32")
    yield app
    if not os.environ.get("E2E_KEEP"):
        subprocess.run([*COMPOSE, "down", "-v", "--remove-orphans"], capture_output=True,
                       check=False, timeout=UP_TIMEOUT_S)


def start_appliance(command: list[str]) -> Appliance:
    """Bring a project up from scratch (its volumes removed first), ready for mail: alice
    exists, the test signatures are in, spamd and clamd answer."""
    subprocess.run([*command, "down", "-v", "--remove-orphans"], capture_output=True,
                   check=False, timeout=UP_TIMEOUT_S)
    up = subprocess.run([*command, "up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S)],
                        capture_output=True, text=True, check=False, timeout=UP_TIMEOUT_S + 60)
    if up.returncode != 0:
        logs = subprocess.run([*command, "logs", "--tail", "80"], capture_output=True,
                              text=True, check=False).stdout
        pytest.fail(f"the appliance did not come up healthy:\n{up.stderr}\n{logs}")
    container = subprocess.run([*command, "ps", "-q", "appliance"], capture_output=True,
                               text=True, check=True).stdout.strip()
    app = Appliance(container=container, ip=container_ip(container), command=tuple(command))
    app.exec("appliance", "user", "add", "alice", "--full-name", "Alice Example",
             "--password-stdin", input=ALICE_PASSWORD + "\n")
    # The daemons pick up the new user on SIGHUP, a moment after `user add` returns.
    wait_for(lambda: rcpt_answer(app.ip, f"alice@{DOMAIN}")[0] == 250, 30,
             "port 25 to know alice")
    install_test_signatures(app)
    # spamd compiles its rules and clamd loads the signatures before mail can pass.
    wait_for(lambda: app.exec("appliance", "status", check=False).returncode == 0, 120,
             "`appliance status` to report no problems (spamd and clamd ready)")
    return app


@pytest.fixture(scope="session")
def host(appliance: Appliance) -> Any:
    return testinfra.get_host(f"docker://{appliance.container}")
