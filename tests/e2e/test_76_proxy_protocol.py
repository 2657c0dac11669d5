"""Behind a load balancer: the PROXY protocol from network.trusted_proxies, in the container.

The host (198.51.100.1) plays the load balancer: with its address in trusted_proxies, a
PROXY v2 header claiming 203.0.113.77 makes that the client for the SMTP daemon (its
Received line and log) and for Dovecot's proxied IMAP listener (its log). Without it, a
PROXY header from the host closes the connection. The container is shared: the setting
is removed again at the end.
"""

from __future__ import annotations

import ipaddress
import re
import smtplib
import socket
import struct
import subprocess
import uuid

from aiosmtpd.proxy_protocol import V2_SIGNATURE

from tests.e2e.conftest import ALICE_PASSWORD, CLIENT_IP, DOMAIN, Appliance, wait_for
from tests.e2e.mail import TIMEOUT_S, imap_message, message
from tests.e2e.plugins import configured

REAL_CLIENT = "203.0.113.77"
REAL_PORT = 40777
PROXIED_IMAP_PORT = 10143  # appliance/services/dovecot.py PROXIED_LISTENERS


def proxy_v2(source: str, destination: str, port: int) -> bytes:
    body = (ipaddress.ip_address(source).packed + ipaddress.ip_address(destination).packed
            + struct.pack("!HH", REAL_PORT, port))
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


class ProxiedSMTP(smtplib.SMTP):
    """smtplib, with a PROXY header sent first, as a load balancer does."""

    def __init__(self, header: bytes, host: str, port: int) -> None:
        self.header = header
        super().__init__(host, port, timeout=TIMEOUT_S)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)
        sock.sendall(self.header)
        return sock


def container_log(appliance: Appliance) -> str:
    out = subprocess.run(["docker", "logs", appliance.container], capture_output=True,
                         text=True, check=False)
    return out.stdout + out.stderr


def listening(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def test_a_trusted_proxy_gives_the_real_client_address_and_others_are_refused(
    appliance: Appliance,
) -> None:
    alice = f"alice@{DOMAIN}"
    subject = f"proxied {uuid.uuid4().hex}"
    header = proxy_v2(REAL_CLIENT, appliance.ip, 25)
    with configured(appliance, network__trusted_proxies=[f"{CLIENT_IP}/32"]):
        with ProxiedSMTP(header, appliance.ip, 25) as s:
            s.ehlo("sender.remote.test")
            assert s.send_message(message("someone@remote.test", alice, subject)) == {}

        got = wait_for(lambda: imap_message(appliance.ip, "alice", ALICE_PASSWORD, subject),
                       60, "the proxied message in alice's INBOX")
        ours = " ".join(re.search(rb"Received: from sender\.remote\.test .*?;", got,
                                  re.S)[0].decode().split())  # type: ignore[index]
        assert f"[{REAL_CLIENT}]" in ours, ours
        log = container_log(appliance)
        assert f"smtp {REAL_CLIENT}:{REAL_PORT} by PROXY v2 from {CLIENT_IP}" in log

        # Dovecot's proxied IMAP listener: the header's address in its log
        wait_for(lambda: listening(appliance.ip, PROXIED_IMAP_PORT), 30,
                 "Dovecot's proxied IMAP listener")
        with socket.create_connection((appliance.ip, PROXIED_IMAP_PORT),
                                      timeout=TIMEOUT_S) as imap:
            imap.sendall(proxy_v2(REAL_CLIENT, appliance.ip, 143))
            assert imap.recv(512).startswith(b"* OK")
            imap.sendall(b"a LOGOUT\r\n")
            while imap.recv(512):
                pass
        wait_for(lambda: re.search(rf"imap-login: .*rip={re.escape(REAL_CLIENT)}\b",
                                   container_log(appliance)),
                 30, "Dovecot's log line with the client's real address")

    # trusted_proxies is empty again: the same header from the host is refused
    assert not listening(appliance.ip, PROXIED_IMAP_PORT)
    with socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S) as raw:
        raw.sendall(header + b"EHLO sender.remote.test\r\n")
        said = b""
        while chunk := raw.recv(4096):
            said += chunk
    assert b"250" not in said  # at most the greeting, then the connection was closed
    assert (f"smtp {CLIENT_IP} closed: PROXY header from an address not in "
            "network.trusted_proxies") in container_log(appliance)
