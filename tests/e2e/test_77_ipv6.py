"""Mail exchanged over IPv6: the e2e network is dual-stack (compose.e2e.yaml, the
documentation prefix 2001:db8:100::/64), the host its gateway on both. Internet mail on
25, submission on 587, IMAP on 993 and the webmail on 443 over IPv6; the appliance
delivers to an MX that has only an AAAA record; password guessing over IPv6 bans the
guesser's /64."""

from __future__ import annotations

import http.client
import re
import smtplib

import pytest

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    APPLIANCE_IP6,
    CLIENT_IP6,
    DOMAIN,
    SINK_IP6,
    Appliance,
    TestDNS,
    sink_messages,
    wait_for,
)
from tests.e2e.mail import TIMEOUT_S, imap_answer, imap_find, imap_login, message, tls_context
from tests.e2e.plugins import bannable

ALICE = f"alice@{DOMAIN}"
CLIENT_64 = "2001:db8:100::/64"


def _received_fields(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [" ".join(f.split()) for f in
            re.findall(r"^Received:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.M)]


def test_internet_mail_over_ipv6_on_25_reaches_alice_with_the_v6_client_traced(
        appliance: Appliance, zones: TestDNS) -> None:
    # A remote domain whose SPF allows the host's IPv6 address and nothing else
    zones.set("v6sender.test", "MX", "10 sink.remote.test.")
    zones.set("v6sender.test", "TXT", f"v=spf1 ip6:{CLIENT_IP6}/128 -all")
    msg = message("carol@v6sender.test", ALICE)
    with smtplib.SMTP(APPLIANCE_IP6, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.remote.test")
        assert s.send_message(msg) == {}

    raw = wait_for(lambda: imap_find(appliance.ip, "alice", ALICE_PASSWORD,
                                     str(msg["Subject"])), 30,
                   "the IPv6 message in alice's INBOX")
    ours = [f for f in _received_fields(raw) if f"[IPv6:{CLIENT_IP6}])" in f]
    assert ours and ours[-1].startswith(
        f"Received: from sender.remote.test (unknown [IPv6:{CLIENT_IP6}]) by "), ours
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    spf = " ".join(re.search(r"^Received-SPF:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.M)
                   .group(0).split())  # type: ignore[union-attr]
    assert spf.startswith("Received-SPF: pass ") and f"client-ip={CLIENT_IP6};" in spf, spf


def test_submission_over_ipv6_is_delivered_to_an_mx_with_only_an_aaaa_record(
        appliance: Appliance, zones: TestDNS) -> None:
    zones.set("v6only.test", "MX", "10 mx.v6only.test.")
    zones.set("mx.v6only.test", "AAAA", SINK_IP6)  # and no A record
    recipient = "friend@v6only.test"
    with smtplib.SMTP(APPLIANCE_IP6, 587, timeout=TIMEOUT_S) as s:
        s.ehlo("laptop.test")
        s.starttls(context=tls_context())
        s.ehlo("laptop.test")
        s.login("alice", ALICE_PASSWORD)
        assert s.send_message(message(ALICE, recipient)) == {}

    got = wait_for(lambda: sink_messages(recipient), 60,
                   f"mail for {recipient} at the sink's IPv6 address")[0]
    head = got.split(b"\r\n\r\n", 1)[0].decode()
    assert f"X-Sink-Peer: {APPLIANCE_IP6}\r\n" in head, head  # Postfix sent it over IPv6
    ours = [f for f in _received_fields(got) if f.startswith("Received: from laptop.test ")]
    assert ours and f"[IPv6:{CLIENT_IP6}])" in ours[0], ours
    assert "(Authenticated sender: alice)" in ours[0] and " with ESMTPSA id " in ours[0]


def test_unbound_queries_over_ipv6_where_the_container_has_an_ipv6_route(
        appliance: Appliance) -> None:
    conf = appliance.exec("cat", "/etc/unbound/unbound.conf").stdout
    assert "\n    do-ip6: yes\n" in conf


def test_imap_login_over_ipv6_on_993(appliance: Appliance) -> None:
    assert imap_login(APPLIANCE_IP6, "alice", ALICE_PASSWORD)


def _https_get(path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPSConnection(APPLIANCE_IP6, 443, context=tls_context(),
                                       timeout=TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_webmail_answers_over_ipv6_on_443_and_80_redirects(appliance: Appliance) -> None:
    status, _, page = _https_get("/webmail/")
    assert status == 200 and b"rcmloginuser" in page, (status, page[:500])
    plain = http.client.HTTPConnection(APPLIANCE_IP6, 80, timeout=TIMEOUT_S)
    try:
        plain.request("GET", "/webmail/")
        response = plain.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://[{APPLIANCE_IP6}]/webmail/"
    finally:
        plain.close()


def test_password_guessing_over_ipv6_bans_the_guessers_64_only(appliance: Appliance) -> None:
    with bannable(appliance, max_failures=2):
        appliance.exec("appliance", "ban", "remove", CLIENT_IP6, check=False)
        try:
            answers = [imap_answer(APPLIANCE_IP6, "alice", f"wrong-{i}") for i in range(2)]
            assert all("AUTHENTICATIONFAILED" in a for a in answers), answers
            listed = appliance.exec("appliance", "ban", "list").stdout
            assert any(line.startswith(CLIENT_64 + " ") for line in listed.splitlines()), \
                listed
            assert "is banned" in imap_answer(APPLIANCE_IP6, "alice", ALICE_PASSWORD)
            # the SMTP daemons share the ban: 421 instead of the greeting
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP(APPLIANCE_IP6, 587, timeout=TIMEOUT_S)
            assert refused.value.smtp_code == 421
            assert f"{CLIENT_IP6} is banned ".encode() in refused.value.smtp_error
            # the host's IPv4 address is another client: not banned
            assert imap_login(appliance.ip, "alice", ALICE_PASSWORD)
            lifted = appliance.exec("appliance", "ban", "remove", CLIENT_IP6).stdout
            assert CLIENT_64 in lifted, lifted
            assert imap_answer(APPLIANCE_IP6, "alice", ALICE_PASSWORD) == "OK"
        finally:
            appliance.exec("appliance", "ban", "remove", CLIENT_IP6, check=False)
