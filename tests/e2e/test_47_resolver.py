"""Unbound is the appliance's one resolver; when it or its forwarder is gone, mail is
deferred (4xx), never refused and never accepted unchecked, and flows again after."""

from __future__ import annotations

import json
import threading
import time

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    DNS2_IP,
    DNS_IP,
    NOWHERE_IP,
    SINK_IP,
    STATE,
    Appliance,
    TestDNS,
    wait_for,
)
from tests.e2e.mail import imap_subjects
from tests.e2e.plugins import body, dialogue, uid


def fresh_sender_domain(zones: TestDNS) -> str:
    """A sender domain no cache has seen yet, so the check must ask DNS now."""
    domain = f"fresh{uid()}.test"
    zones.set(domain, "MX", "10 sink.remote.test.")
    zones.set(domain, "A", SINK_IP)
    return domain


def test_every_lookup_goes_through_unbound(appliance: Appliance) -> None:
    resolv = appliance.exec("cat", "/etc/resolv.conf").stdout
    assert [line for line in resolv.splitlines() if line.startswith("nameserver")] == \
        ["nameserver 127.0.0.1"]
    assert '"nameservers": [\n      "127.0.0.1"\n    ]' in appliance.exec(
        "cat", "/etc/appliance/smtpd.json").stdout
    assert "is running" in appliance.exec(
        "unbound-control", "-c", "/etc/unbound/unbound.conf", "status").stdout
    assert appliance.exec("getent", "hosts", "sink.remote.test").stdout.split()[0] == SINK_IP


# Lookups as the SMTP plugins make them (appliance.smtpd.dns: 2 s per try, 5 s in all),
# in the container for SECONDS; prints how many were answered and how many failed.
LOOKUP_LOOP = """
import sys, time, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers, r.timeout, r.lifetime = ["127.0.0.1"], 2.0, 5.0
answered = failed = 0
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        r.resolve("sink.remote.test", "A")
        answered += 1
    except Exception as e:
        failed += 1
        print(type(e).__name__, e, file=sys.stderr)
print(answered, failed)
"""


def test_a_resolver_change_reloads_unbound_without_a_gap(appliance: Appliance) -> None:
    """Unbound reloads in place: port 53 never closes, so no lookup fails while the
    forwarder changes (a restart used to leave a moment of 451s)."""
    def pid() -> str:
        return appliance.exec("supervisorctl", "pid", "unbound").stdout.strip()

    only_there = f"only-{uid()}.reload.test"  # a name only the second server knows
    (STATE / "zones2.json").write_text(json.dumps({"names": {
        only_there: {"A": ["192.0.2.78"]}, "sink.remote.test": {"A": [SINK_IP]}}}))
    before = pid()
    result: dict[str, str] = {}
    loop = threading.Thread(target=lambda: result.update(out=appliance.exec(
        "/opt/appliance/bin/python3", "-c", LOOKUP_LOOP, "8").stdout))
    loop.start()
    try:
        time.sleep(2)  # lookups under way before the change
        appliance.exec("appliance", "config", "set", "network.dns_forwarders", DNS2_IP)
        # the new forwarder is in use
        assert appliance.exec("getent", "hosts", only_there).stdout.split()[0] == "192.0.2.78"
    finally:
        loop.join()
        appliance.exec("appliance", "config", "set", "network.dns_forwarders", DNS_IP)
    out = result.get("out", "")
    assert out, "the lookup loop did not finish"
    answered, failed = map(int, out.split())
    assert answered > 0 and failed == 0, out
    assert pid() == before  # reloaded, not restarted


def test_resolver_down_defers_then_mail_flows_once(appliance: Appliance,
                                                   zones: TestDNS) -> None:
    sender = f"someone@{fresh_sender_domain(zones)}"
    subject = f"resolver-down-{uid()}"
    appliance.exec("supervisorctl", "stop", "unbound")
    try:
        d = dialogue(appliance.ip, sender=sender, data=body(subject, sender=sender))
        assert d.code("mail") == 451, d.replies  # resolvable_fromhost cannot tell
        status = appliance.exec("appliance", "status", check=False)
        assert status.returncode == 1 and "unbound is STOPPED" in status.stdout
    finally:
        appliance.exec("supervisorctl", "start", "unbound")
    again = wait_for(lambda: (r := dialogue(appliance.ip, sender=sender,
                                             data=body(subject, sender=sender)))
                     .replies.get("data", (0,))[0] == 250 and r, 60, "a 250 once Unbound is back")
    assert again.code("mail") == 250
    wait_for(lambda: subject in imap_subjects(appliance.ip, "alice", ALICE_PASSWORD), 60,
             "the retried message")
    assert imap_subjects(appliance.ip, "alice", ALICE_PASSWORD).count(subject) == 1


def test_dead_forwarder_defers_until_it_is_fixed(appliance: Appliance, zones: TestDNS) -> None:
    sender = f"someone@{fresh_sender_domain(zones)}"
    appliance.exec("appliance", "config", "set", "network.dns_forwarders", NOWHERE_IP)
    try:
        d = dialogue(appliance.ip, sender=sender)
        assert d.code("mail") == 451, d.replies
    finally:
        appliance.exec("appliance", "config", "set", "network.dns_forwarders", DNS_IP)
    wait_for(lambda: dialogue(appliance.ip, sender=sender).code("mail") == 250, 60,
             "MAIL accepted with the forwarder back")
