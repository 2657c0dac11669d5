"""The console in a real terminal: tmux runs `docker compose exec appliance console` at
80x24 and the test types into it as an admin would. Each change is checked where it
takes effect: a name only the new forwarder knows resolves, the interface has the new
MTU, and the SMTP listener advertises the clamped MSS."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    COMPOSE,
    DNS2_IP,
    DNS_IP,
    SINK_IP,
    STATE,
    Appliance,
    wait_for,
)
from tests.e2e.plugins import delivered, uid

SESSION = "appliance-e2e-console"
_servers = itertools.count()


class Terminal:
    """A tmux session of 80x24 running one command, on a tmux server of its own: after
    the last session on a server is killed, the server exits in the background, and a
    new session started on it meanwhile fails ("server exited unexpectedly")."""

    def __init__(self, command: list[str]) -> None:
        self.server = f"appliance-e2e-{os.getpid()}-{next(_servers)}"
        self._tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24",
                   shlex.join(command))

    def _tmux(self, *args: str, check: bool = True) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True,
                              text=True, check=check).stdout

    def keys(self, *keys: str) -> None:
        # one at a time: Esc followed at once by a key would read as Alt+key
        for key in keys:
            self._tmux("send-keys", "-t", SESSION, key)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", SESSION, "-l", text)
        time.sleep(0.3)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", SESSION)

    def wait(self, text: str, timeout: float = 30) -> str:
        return wait_for(lambda: text in (s := self.screen()) and s, timeout,
                        f"{text!r} on the console")

    def close(self) -> None:
        self._tmux("kill-server", check=False)


@pytest.fixture
def console(appliance: Appliance) -> Iterator[Terminal]:
    term = Terminal([*COMPOSE, "exec", "appliance", "console"])
    try:
        menu = term.wait("Send a test message")
        (STATE / "console-menu.txt").write_text(menu)  # the README's capture comes from here
        yield term
    finally:
        term.close()


def resolves(appliance: Appliance, name: str) -> str:
    proc = appliance.exec("getent", "hosts", name, check=False)
    return proc.stdout.split()[0] if proc.returncode == 0 else ""


def toml_value(appliance: Appliance, key: str) -> object:
    out = appliance.exec("appliance", "config", "get", key).stdout.strip()
    return json.loads(out) if out.startswith(("[", "\"")) else out


def test_main_menu_shows_every_screen_at_80x24(console: Terminal) -> None:
    screen = console.screen()  # the pane is 80x24: what is not on it is cut off
    for entry in ("1  Status", "2  Networking", "3  DNS forwarder", "4  MTU",
                  "5  Mail delivery", "6  Apply", "7  Send a test message", "q Quit"):
        assert entry in screen, entry


def test_dns_forwarder_set_from_the_console_is_used(appliance: Appliance,
                                                     console: Terminal) -> None:
    name = f"only-{uid()}.console.test"
    (STATE / "zones2.json").write_text(json.dumps({"names": {name: {"A": ["192.0.2.77"]}}}))
    assert resolves(appliance, name) == ""  # the usual forwarder does not know it
    try:
        console.keys("3")
        console.wait("Forwarders")
        console.keys("End", "C-u")
        console.type(DNS2_IP)
        console.keys("C-s")
        console.wait(f"+    forward-addr: {DNS2_IP}")
        console.keys("a")
        console.wait("applied. unbound: reload")
        assert toml_value(appliance, "network.dns_forwarders") == [DNS2_IP]
        assert wait_for(lambda: resolves(appliance, name), 30, f"{name} to resolve") == \
            "192.0.2.77"
    finally:
        appliance.exec("appliance", "config", "set", "network.dns_forwarders", DNS_IP)
    wait_for(lambda: resolves(appliance, "remote.test") == SINK_IP, 30,
             "the usual forwarder again")


def client_mss(ip: str, port: int) -> int:
    with socket.create_connection((ip, port), timeout=10) as s:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)


def test_mtu_from_the_console_sets_the_interface_and_clamps_smtp(appliance: Appliance,
                                                                  console: Terminal) -> None:
    assert client_mss(appliance.ip, 25) > 1400  # an ordinary 1500 path first
    try:
        console.keys("4")
        console.wait("Probe path to")
        console.keys("End", "C-u")
        console.type("1400")
        console.wait("MSS: 1360")
        console.keys("Tab")
        console.type(SINK_IP)
        console.keys("Enter")
        console.wait(f"smallest path MTU to {SINK_IP}: 1500")
        console.keys("C-s")
        console.wait("Would change: network, smtpd")
        console.keys("a")
        console.wait("network: eth0: mtu 1400")
        assert toml_value(appliance, "network.mtu") == "1400"
        assert "mtu 1400 " in appliance.exec("ip", "link", "show", "eth0").stdout
        wait_for(lambda: client_mss(appliance.ip, 25) <= 1360, 60, "port 25 to restart")
        # The clamp alone, as in a container without NET_ADMIN: the interface back at
        # 1500, port 25 still advertises 1360 while Dovecot's 993 offers the full 1460.
        appliance.exec("ip", "link", "set", "dev", "eth0", "mtu", "1500")
        assert client_mss(appliance.ip, 993) > 1400
        assert client_mss(appliance.ip, 25) <= 1360
    finally:
        appliance.exec("appliance", "config", "set", "network.mtu", "1450")
        assert "mtu 1450 " in appliance.exec("ip", "link", "show", "eth0").stdout
        # 0 gives back the MTU the container started with, and drops the clamp
        appliance.exec("appliance", "config", "set", "network.mtu", "0")
    assert "mtu 1500 " in appliance.exec("ip", "link", "show", "eth0").stdout
    wait_for(lambda: client_mss(appliance.ip, 25) > 1400, 60, "port 25 without the clamp")


def test_mtu_without_net_admin_still_clamps_smtp(appliance: Appliance) -> None:
    """A container without NET_ADMIN (the console runs here without it): the interface
    keeps its MTU and the console says why, but the SMTP listeners clamp their MSS."""
    term = Terminal([*COMPOSE, "exec", "appliance", "setpriv", "--bounding-set=-net_admin",
                     "--inh-caps=-net_admin", "console"])
    try:
        term.wait("Send a test message")
        term.keys("4")
        term.wait("Probe path to")
        term.keys("End", "C-u")
        term.type("1400")
        term.keys("C-s")
        term.wait("Would change: network, smtpd")
        term.keys("a")
        said = " ".join(term.wait("NET_ADMIN").split())  # one line, however it wrapped
        assert "applied." in said and "Operation not permitted" in said, said
        assert "the container needs the NET_ADMIN capability" in said, said
        assert toml_value(appliance, "network.mtu") == "1400"
        assert "mtu 1500 " in appliance.exec("ip", "link", "show", "eth0").stdout
        wait_for(lambda: client_mss(appliance.ip, 25) <= 1360, 60, "port 25 clamped")
        assert client_mss(appliance.ip, 993) > 1400  # the interface itself is unchanged
    finally:
        term.close()
        appliance.exec("appliance", "config", "set", "network.mtu", "0")
    wait_for(lambda: client_mss(appliance.ip, 25) > 1400, 60, "port 25 without the clamp")


def test_status_networking_delivery_and_test_message(appliance: Appliance,
                                                     console: Terminal) -> None:
    console.keys("1")
    status = console.wait("smtpd-smtp")
    for line in ("unbound", "postfix", "queue:", "data volume", "TLS certificate",
                 "virus signatures:"):
        assert line in console.wait(line), line
    # each service with its state and uptime, two to a line
    assert re.search(r"smtpd-smtp +RUNNING +(\d+d )?\d+:\d\d:\d\d", status), status
    (STATE / "console-status.txt").write_text(status)
    console.keys("Escape", "2")
    assert f"{appliance.ip}/24" in console.wait("default via 198.51.100.1 dev eth0")
    console.keys("Escape", "5")
    console.wait("Smarthost TLS")
    # the HELO name, six fields down: Tab from the smarthost field, as an admin would
    console.keys("Tab", "Tab", "Tab", "Tab", "Tab", "End", "C-u")
    console.type("out.example.com")
    console.keys("C-s")
    console.wait("+smtp_helo_name = out.example.com")
    console.keys("a")
    console.wait("applied. postfix: reload")
    try:
        assert toml_value(appliance, "delivery.helo_host") == "out.example.com"
        assert appliance.exec("postconf", "-h", "smtp_helo_name").stdout.strip() == \
            "out.example.com"
    finally:
        appliance.exec("appliance", "config", "unset", "delivery.helo_host")
    console.keys("Escape", "7")
    console.wait("Send to")
    console.type("alice@example.com")
    console.keys("Enter")
    done = console.wait("accepted for alice@example.com", timeout=60)
    assert "retcode (250)" in done or "reply: b'250" in done
    message = delivered(appliance, "Test message from mail.example.com",
                        password=ALICE_PASSWORD, timeout=60)
    assert b"sent from the console of mail.example.com" in message
    console.keys("Escape", "1")
    # the test message, in the status's recent mail
    console.wait("postmaster@example.com -> alice@example.com queued")
