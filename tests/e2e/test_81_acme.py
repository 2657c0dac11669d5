"""tls.acme against Let's Encrypt's test CA: Debian's pebble, a peer on the test network.

Pebble (tests/e2e/pebble/Containerfile, image appliance-e2e-pebble, built here when
missing) listens on 198.51.100.60:14000 with a certificate of a CA this module makes,
which the appliance trusts through tls.acme_ca_bundle; it resolves names through the test
DNS and validates HTTP-01 on port 80 of the appliance. Proven: the order, the certificate
on 465, 587 (STARTTLS), 993 and 443 without any daemon restarting, a new serial on the
next `cert renew`, and a refused order that keeps the old certificate and says why in
`appliance status`. At the end the container is as it was: self-signed, tls.acme off.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import APPLIANCE_IP, DNS_IP, STATE, Appliance, TestDNS, wait_for

pytestmark = pytest.mark.e2e

PEBBLE_IMAGE = "appliance-e2e-pebble"
PEBBLE_NAME = "appliance-e2e-pebble"
PEBBLE_IP = "198.51.100.60"
NETWORK = "appliance-e2e_default"
CONTAINERFILE = Path(__file__).parent / "pebble" / "Containerfile"
HOST = "mail.example.com"
PROBED = "mta-sts.example.com"  # published: the self-probe adds it
UNPUBLISHED = "autodiscover.example.com"  # not in the test DNS: left out
CA_BUNDLE = "/var/lib/appliance/tls/acme-test-ca.pem"
TLS_PORTS = (465, 587, 993, 443)
DAEMONS = ("smtpd-smtp", "smtpd-smtps", "smtpd-submission", "dovecot", "nginx", "postfix")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def listen_certificate(folder: Path) -> bytes:
    """A test CA and pebble's own HTTPS certificate from it; the CA's PEM."""
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    ca_key, key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appliance e2e test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("pebble"),
                 x509.IPAddress(ipaddress.ip_address(PEBBLE_IP))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(_pem(key))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    (folder / "ca.pem").write_bytes(ca_pem)
    (folder / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": "0.0.0.0:14000",
        "managementListenAddress": "0.0.0.0:15000",
        "certificate": "/pebble/cert.pem",
        "privateKey": "/pebble/key.pem",
        "httpPort": 80,
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
        "retryAfter": {"authz": 1, "order": 1},
        "certificateValidityPeriod": 90 * 86400,
    }}))
    for f in folder.iterdir():
        f.chmod(0o644)
    return ca_pem


def _docker(*args: str, check: bool = True, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


@pytest.fixture(scope="module")
def pebble(appliance: Appliance) -> Iterator[ssl.SSLContext]:
    """Pebble running on the test network; an SSL context that trusts its listener."""
    if _docker("image", "inspect", PEBBLE_IMAGE, check=False).returncode != 0:
        _docker("build", "-q", "-f", str(CONTAINERFILE), "-t", PEBBLE_IMAGE,
                str(CONTAINERFILE.parent), timeout=600)
    folder = STATE / "pebble"
    ca_pem = listen_certificate(folder)
    _docker("rm", "-f", PEBBLE_NAME, check=False)
    _docker("run", "-d", "--name", PEBBLE_NAME, "--network", NETWORK, "--ip", PEBBLE_IP,
            "-v", f"{folder}:/pebble:ro",
            "-e", "PEBBLE_VA_NOSLEEP=1", "-e", "PEBBLE_WFE_NONCEREJECT=0",
            # every order validates afresh: the refusal below must not ride on an
            # authorization an earlier order won
            "-e", "PEBBLE_AUTHZREUSE=0",
            PEBBLE_IMAGE, "pebble", "-config", "/pebble/config.json",
            "-dnsserver", f"{DNS_IP}:53")
    context = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        wait_for(lambda: urllib.request.urlopen(f"https://{PEBBLE_IP}:14000/dir",
                                                context=context, timeout=5).status == 200,
                 30, "pebble's directory")
        appliance.exec("sh", "-c", f"cat > {CA_BUNDLE}", input=ca_pem.decode())
        yield context
    finally:
        logs = _docker("logs", "--tail", "40", PEBBLE_NAME, check=False)
        print(logs.stdout + logs.stderr)
        _docker("rm", "-f", PEBBLE_NAME, check=False)


def pebble_issuer(context: ssl.SSLContext) -> x509.Certificate:
    """The intermediate pebble signs with (its management API)."""
    with urllib.request.urlopen(f"https://{PEBBLE_IP}:15000/intermediates/0",
                                context=context, timeout=10) as r:
        return x509.load_pem_x509_certificate(r.read())


def served(port: int) -> x509.Certificate:
    """The certificate a TLS port presents (587: after STARTTLS)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if port == 587:
        with smtplib.SMTP(APPLIANCE_IP, port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=context)
            der = s.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    else:
        with socket.create_connection((APPLIANCE_IP, port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=HOST) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def pids(appliance: Appliance) -> dict[str, str]:
    out = appliance.exec("supervisorctl", "status", check=False).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        m = re.search(r"pid (\d+)", line)
        if parts and parts[0] in DAEMONS and m:
            found[parts[0]] = m.group(1)
    return found


def container_file(appliance: Appliance, path: str) -> str:
    return appliance.exec("cat", path).stdout


def dns_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(san.value.get_values_for_type(x509.DNSName))


def all_serve(serial: int) -> bool:
    return all(served(port).serial_number == serial for port in TLS_PORTS)


def flush_dns(appliance: Appliance, *names: str) -> None:
    """Unbound forgets its answers (a name another test looked up, NXDOMAIN then)."""
    unbound = ["unbound-control", "-c", "/etc/unbound/unbound.conf"]
    for name in names:
        appliance.exec(*unbound, "flush", name)
    appliance.exec(*unbound, "flush_negative")


@pytest.fixture(scope="module")
def acme_on(appliance: Appliance, zones: TestDNS, pebble: ssl.SSLContext
            ) -> Iterator[tuple[str, str]]:
    """tls.acme on against pebble, the host and PROBED published; afterwards the
    self-signed pair back in place, tls.acme off, the records gone."""
    cert, key = (container_file(appliance, f"/var/lib/appliance/tls/{f}")
                 for f in ("cert.pem", "key.pem"))
    zones.set(HOST, "A", APPLIANCE_IP)
    zones.set(PROBED, "A", APPLIANCE_IP)
    zones.remove(UNPUBLISHED)
    flush_dns(appliance, HOST, PROBED, UNPUBLISHED)
    keys = ("tls.acme_directory", "tls.acme_ca_bundle", "tls.acme_email", "tls.acme")
    for k, v in zip(keys, (f"https://{PEBBLE_IP}:14000/dir", CA_BUNDLE,
                           "postmaster@example.com", "true"), strict=True):
        appliance.exec("appliance", "config", "set", k, v)
    try:
        yield cert, key
    finally:
        for k in reversed(keys):
            appliance.exec("appliance", "config", "unset", k, check=False)
        appliance.exec("sh", "-c", "cat > /var/lib/appliance/tls/key.pem", input=key)
        appliance.exec("sh", "-c", "cat > /var/lib/appliance/tls/cert.pem", input=cert)
        appliance.exec("rm", "-rf", "/var/lib/appliance/tls/acme",
                       "/var/lib/appliance/tls/previous", CA_BUNDLE)
        appliance.exec("appliance", "apply")
        zones.remove(HOST)
        zones.remove(PROBED)
        original = x509.load_pem_x509_certificate(cert.encode()).serial_number
        wait_for(lambda: all_serve(original), 30, "the self-signed certificate back")


def test_order_renew_and_refusal(appliance: Appliance, zones: TestDNS,
                                 pebble: ssl.SSLContext, acme_on: tuple[str, str]) -> None:
    issuer = pebble_issuer(pebble)
    before = pids(appliance)
    assert set(before) >= {"smtpd-smtps", "smtpd-submission", "dovecot", "nginx"}, before
    self_signed = x509.load_pem_x509_certificate(acme_on[0].encode())

    started = time.monotonic()
    out = appliance.exec("appliance", "cert", "renew", timeout=180)
    took = time.monotonic() - started
    print(f"first order against pebble: {took:.1f} s ({out.stdout.strip()})")
    first = x509.load_pem_x509_certificate(
        container_file(appliance, "/var/lib/appliance/tls/cert.pem").encode())
    assert first.issuer == issuer.subject
    first.verify_directly_issued_by(issuer)
    assert dns_names(first) == {HOST, PROBED}, "the self-probe picks the published names"
    # the pair it replaced is kept (the self-signed one, or the scheduler's first order
    # when its tick came just after tls.acme was set)
    previous = x509.load_pem_x509_certificate(
        container_file(appliance, "/var/lib/appliance/tls/previous/cert.pem").encode())
    assert previous.serial_number != first.serial_number
    wait_for(lambda: all_serve(first.serial_number), 30,
             "465, 587, 993 and 443 to serve pebble's certificate")
    for port in TLS_PORTS:
        cert = served(port)
        assert cert.issuer == issuer.subject, port
    assert pids(appliance) == before, "no daemon restarted"

    status = appliance.exec("appliance", "cert", "status").stdout
    assert issuer.subject.rfc4514_string() in status and HOST in status, status
    overall = appliance.exec("appliance", "status", check=False).stdout
    assert f"TLS certificate for {HOST}, {PROBED}: {issuer.subject.rfc4514_string()}, " \
        "expires " in overall, overall
    # the scheduler's job finds nothing to do now
    due = appliance.exec("appliance", "cert", "renew", "--if-due").stdout
    assert due.startswith("not due"), due

    appliance.exec("appliance", "cert", "renew", timeout=180)
    second = x509.load_pem_x509_certificate(
        container_file(appliance, "/var/lib/appliance/tls/cert.pem").encode())
    assert second.serial_number != first.serial_number
    wait_for(lambda: all_serve(second.serial_number), 30, "the renewed certificate served")
    assert pids(appliance) == before, "no daemon restarted on renewal"

    # A CA that refuses: the host name no longer resolves for pebble's validation. A new
    # account (its key removed) has no authorization an earlier order won, which pebble
    # may otherwise reuse whatever PEBBLE_AUTHZREUSE says (seen: 1 run in 5)
    appliance.exec("rm", "/var/lib/appliance/tls/acme/account.key")
    zones.remove(HOST)
    refused = appliance.exec("appliance", "cert", "renew", check=False, timeout=180)
    assert refused.returncode == 1, refused
    assert "the current one stays" in refused.stderr, refused.stderr
    kept = x509.load_pem_x509_certificate(
        container_file(appliance, "/var/lib/appliance/tls/cert.pem").encode())
    assert kept.serial_number == second.serial_number
    assert all_serve(second.serial_number)
    status = appliance.exec("appliance", "status", check=False)
    assert status.returncode == 1, status.stdout
    problems = next(line for line in status.stdout.splitlines()
                    if line.startswith("problems: "))
    print(f"refused order, as status says it: {problems}")
    assert "ACME order failed" in problems and HOST in problems, problems
    assert "the current certificate stays" in problems, problems
    cert_status = appliance.exec("appliance", "cert", "status", check=False)
    assert cert_status.returncode == 1 and "last error:" in cert_status.stdout
    assert self_signed.serial_number != second.serial_number
