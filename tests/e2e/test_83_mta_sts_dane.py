"""MTA-STS and DANE: our policy is served, and receivers' policies hold outbound.

Inbound: https://mta-sts.example.com/.well-known/mta-sts.txt answers RFC 8461's text.
Outbound: a remote domain whose policy says enforce, and whose MX offers a certificate
that does not verify, gets nothing: the message waits in the queue for a TLS/certificate
reason, and the remote server sees nothing in the clear. DANE likewise: a domain in a
DNSSEC-signed zone whose TLSA record does not match its MX's certificate.

The remote side is tests/e2e/peers/stspeer.py, run here from the appliance image on the
test network: an HTTPS policy server and an MX with STARTTLS. MTA-STS fetches policies
only over HTTPS with a certificate a public CA signed; no public CA can sign for a test
name without the internet, so this test makes its own CA, signs the policy server's
certificate with it and adds it to the appliance container's trust (taken out again at
the end). The MX's certificate is self-signed: that is the one that must not verify.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import os
import re
import smtplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    DNS_IP,
    DOMAIN,
    ROOT,
    STATE,
    Appliance,
    TestDNS,
    sink_messages,
    wait_for,
)
from tests.e2e.mail import message, tls_context

PEER_IP = "198.51.100.27"
PEER = "appliance-e2e-stspeer"
CA_IN_APPLIANCE = "/usr/local/share/ca-certificates/appliance-e2e-test-ca.crt"
STS_DOMAIN = "sts.test"
DANE_DOMAIN = "dane.test"
SOCKETMAP = "socketmap:inet:127.0.0.1:8461:postfix"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, names: list[str], key: ec.EllipticCurvePrivateKey,
          issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
          ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               # what Python's strict verification (the resolver's) asks of a chain
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False)
               .add_extension(x509.KeyUsage(
                   digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                   content_commitment=False, key_encipherment=False, data_encipherment=False,
                   key_agreement=False, encipher_only=False, decipher_only=False),
                   critical=True))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_name(path.name + "-cert.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM))
    path.with_name(path.name + "-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def _network(appliance: Appliance) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}"
         "{{end}}", appliance.container], capture_output=True, text=True, check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def peer(appliance: Appliance) -> Iterator[str]:
    """The remote domains' servers, and our test CA trusted by the appliance."""
    sts = STATE / "sts"
    (sts / "policies").mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("appliance e2e test CA", [], ca_key, ca=True)
    https_key = ec.generate_private_key(ec.SECP256R1())
    _write(sts / "https", _cert(f"mta-sts.{STS_DOMAIN}", [f"mta-sts.{STS_DOMAIN}"],
                                https_key, issuer=(ca.subject, ca_key)), https_key)
    mx_key = ec.generate_private_key(ec.SECP256R1())
    _write(sts / "mx", _cert(f"mx.{STS_DOMAIN}", [f"mx.{STS_DOMAIN}", f"mx.{DANE_DOMAIN}"],
                             mx_key), mx_key)
    for f in sts.glob("*.pem"):
        os.chmod(f, 0o644)
    subprocess.run(["docker", "rm", "-f", PEER], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--name", PEER, "--network", _network(appliance),
                    "--ip", PEER_IP, "-v", f"{ROOT / 'tests/e2e/peers'}:/peers:ro",
                    "-v", f"{STATE}:/state", "--entrypoint", "/opt/appliance/bin/python",
                    "appliance:latest", "/peers/stspeer.py"], check=True, capture_output=True)
    appliance.exec("sh", "-c", f"cat > {CA_IN_APPLIANCE} && update-ca-certificates",
                   input=ca.public_bytes(serialization.Encoding.PEM).decode())
    # the resolver reads the CA bundle when it starts
    appliance.exec("supervisorctl", "restart", "mta-sts-resolver")
    try:
        wait_for(lambda: socket.create_connection((PEER_IP, 25), 2).close() is None, 30,
                 "the MTA-STS peer to listen")
        yield PEER_IP
    finally:
        subprocess.run(["docker", "rm", "-f", PEER], capture_output=True, check=False)
        appliance.exec("sh", "-c", f"rm -f {CA_IN_APPLIANCE} && update-ca-certificates --fresh")
        appliance.exec("supervisorctl", "restart", "mta-sts-resolver")


def _send(appliance: Appliance, recipient: str) -> None:
    with smtplib.SMTP(appliance.ip, 587, timeout=15) as s:
        s.starttls(context=tls_context())
        s.login("alice", ALICE_PASSWORD)
        assert s.send_message(message(f"alice@{DOMAIN}", recipient)) == {}


def _deferred(appliance: Appliance, recipient: str) -> tuple[str, str]:
    """(queue id, reason) once the message for `recipient` has been tried and deferred."""
    def tried() -> tuple[str, str] | None:
        for m in appliance.queue():
            for r in m["recipients"]:
                if r["address"] == recipient and r.get("delay_reason"):
                    return m["queue_id"], r["delay_reason"]
        return None
    return wait_for(tried, 90, f"a delivery attempt to {recipient}", every=1)


def test_our_policy_is_served_at_mta_sts_domain(appliance: Appliance) -> None:
    host = f"mta-sts.{DOMAIN}"
    conn = http.client.HTTPSConnection(appliance.ip, 443, timeout=15, context=tls_context())
    conn.sock = tls_context().wrap_socket(socket.create_connection((appliance.ip, 443), 15),
                                          server_hostname=host)
    conn.request("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
    answer = conn.getresponse()
    body = answer.read().decode()
    assert answer.status == 200, body
    assert answer.getheader("Content-Type", "").startswith("text/plain")
    policy = dict(line.split(": ", 1) for line in body.splitlines())
    assert policy == {"version": "STSv1", "mode": "testing", "mx": f"mail.{DOMAIN}",
                      "max_age": "604800"}
    assert body.endswith("\n")


def test_enforced_policy_with_unverified_mx_certificate_defers(
        appliance: Appliance, zones: TestDNS, peer: str) -> None:
    (STATE / "sts" / "policies" / f"{STS_DOMAIN}.txt").write_text(
        f"version: STSv1\r\nmode: enforce\r\nmx: mx.{STS_DOMAIN}\r\nmax_age: 86400\r\n")
    zones.set(STS_DOMAIN, "MX", f"10 mx.{STS_DOMAIN}.")
    zones.set(f"mx.{STS_DOMAIN}", "A", peer)
    zones.set(f"mta-sts.{STS_DOMAIN}", "A", peer)
    zones.set(f"_mta-sts.{STS_DOMAIN}", "TXT", "v=STSv1; id=e2e1")
    recipient = f"friend@{STS_DOMAIN}"
    qid = ""
    try:
        # the resolver fetched the policy over HTTPS and tells Postfix to verify
        answer = wait_for(lambda: appliance.exec("postmap", "-q", STS_DOMAIN, SOCKETMAP,
                                                 check=False).stdout.strip(), 30,
                          "the MTA-STS resolver's policy for sts.test")
        assert answer.startswith("secure") and f"match=mx.{STS_DOMAIN}" in answer, answer
        _send(appliance, recipient)
        qid, reason = _deferred(appliance, recipient)
        assert re.search(r"certificate not (trusted|verified)", reason, re.I), reason
        assert not sink_messages(recipient), "sent although the certificate did not verify"
    finally:
        if qid:
            appliance.exec("postsuper", "-d", qid, check=False)
        for name in (STS_DOMAIN, f"mx.{STS_DOMAIN}", f"mta-sts.{STS_DOMAIN}",
                     f"_mta-sts.{STS_DOMAIN}"):
            zones.remove(name)


def test_dane_tlsa_mismatch_defers(appliance: Appliance, zones: TestDNS, peer: str) -> None:
    # The test DNS signs dane.test; Unbound validates it from this trust anchor, as a
    # site with a signed internal zone would set it (network.dns_trust_anchors).
    zones.signed = [DANE_DOMAIN]
    zones.set(DANE_DOMAIN, "MX", f"10 mx.{DANE_DOMAIN}.")
    zones.set(f"mx.{DANE_DOMAIN}", "A", peer)
    wrong = hashlib.sha256(b"not the MX's key").hexdigest()
    zones.set(f"_25._tcp.mx.{DANE_DOMAIN}", "TLSA", f"3 1 1 {wrong}")
    anchor_file = STATE / "dnssec" / f"{DANE_DOMAIN}.dnskey"

    def anchor() -> str:
        dns.query.udp(dns.message.make_query(DANE_DOMAIN, "DNSKEY"), DNS_IP, timeout=2)
        return anchor_file.read_text().strip() if anchor_file.exists() else ""
    trust_anchor = wait_for(anchor, 30, "the test DNS to sign dane.test")
    dnssec_before = appliance.exec("appliance", "config", "get", "network.dnssec").stdout.strip()
    recipient = f"friend@{DANE_DOMAIN}"
    qid = ""
    try:
        appliance.exec("appliance", "config", "set", "network.dns_trust_anchors", trust_anchor)
        appliance.exec("appliance", "config", "set", "network.dnssec", "true")
        main_cf = appliance.exec("postconf", "-h", "smtp_tls_security_level").stdout.strip()
        assert main_cf == "dane"
        _send(appliance, recipient)
        qid, reason = _deferred(appliance, recipient)
        # a mismatch, not a lookup failure ("TLSA lookup error" would be DNSSEC's)
        assert re.search(r"certificate not (trusted|verified)", reason, re.I), reason
        assert not sink_messages(recipient), "sent although no TLSA record matched"

        # and not over-enforced: once the TLSA record names the MX's key, it is delivered
        mx_cert = x509.load_pem_x509_certificate((STATE / "sts" / "mx-cert.pem").read_bytes())
        spki = mx_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        zones.set(f"_25._tcp.mx.{DANE_DOMAIN}", "TLSA", f"3 1 1 {hashlib.sha256(spki).hexdigest()}")
        appliance.exec("unbound-control", "-c", "/etc/unbound/unbound.conf", "flush_zone",
                       DANE_DOMAIN)
        appliance.exec("postfix", "reload")  # its smtp processes forget the old TLSA answer
        appliance.exec("postqueue", "-i", qid)
        got = wait_for(lambda: sink_messages(recipient), 90, "delivery under a matching TLSA")
        assert got, "not delivered although the TLSA record matched"
        qid = ""
    finally:
        if qid:
            appliance.exec("postsuper", "-d", qid, check=False)
        appliance.exec("appliance", "config", "set", "network.dnssec", dnssec_before)
        appliance.exec("appliance", "config", "unset", "network.dns_trust_anchors")
        zones.signed = []
        for name in (DANE_DOMAIN, f"mx.{DANE_DOMAIN}", f"_25._tcp.mx.{DANE_DOMAIN}"):
            zones.remove(name)
