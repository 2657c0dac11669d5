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

    def compose(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*COMPOSE, *args], capture_output=True, text=True, check=check,
                              input=input, timeout=timeout)

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


@pytest.fixture(scope="session")
def appliance() -> Iterator[Appliance]:
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed: the e2e tests need it (run `make e2e`)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers: {info.stderr.strip()} (run `make e2e`)")
    subprocess.run([*COMPOSE, "down", "-v", "--remove-orphans"], capture_output=True,
                   check=False, timeout=UP_TIMEOUT_S)
    up = subprocess.run([*COMPOSE, "up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S)],
                        capture_output=True, text=True, check=False, timeout=UP_TIMEOUT_S + 60)
    if up.returncode != 0:
        logs = subprocess.run([*COMPOSE, "logs", "--tail", "80"], capture_output=True,
                              text=True, check=False).stdout
        pytest.fail(f"the appliance did not come up healthy:\n{up.stderr}\n{logs}")
    container = subprocess.run([*COMPOSE, "ps", "-q", "appliance"], capture_output=True,
                               text=True, check=True).stdout.strip()
    app = Appliance(container=container, ip=container_ip(container))
    app.exec("appliance", "user", "add", "alice", "--full-name", "Alice Example",
             "--password-stdin", input=ALICE_PASSWORD + "\n")
    # The daemons pick up the new user on SIGHUP, a moment after `user add` returns.
    wait_for(lambda: rcpt_answer(app.ip, f"alice@{DOMAIN}")[0] == 250, 30,
             "port 25 to know alice")
    yield app
    if not os.environ.get("E2E_KEEP"):
        subprocess.run([*COMPOSE, "down", "-v", "--remove-orphans"], capture_output=True,
                       check=False, timeout=UP_TIMEOUT_S)


@pytest.fixture(scope="session")
def host(appliance: Appliance) -> Any:
    return testinfra.get_host(f"docker://{appliance.container}")
