"""Unbound is the appliance's one resolver; when it or its forwarder is gone, mail is
deferred (4xx), never refused and never accepted unchecked, and flows again after."""

from __future__ import annotations

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    DNS_IP,
    NOWHERE_IP,
    SINK_IP,
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
