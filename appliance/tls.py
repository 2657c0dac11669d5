"""First-boot TLS: a self-signed certificate for the appliance's host name.

Kept on the data volume so clients see the same certificate after a restart. Replace
cert.pem/key.pem with a real certificate at any time and run `appliance apply`.
"""

from __future__ import annotations

import datetime
import grp
import hashlib
import ipaddress
import os
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from appliance.config import write_atomic

VALID_DAYS = 3650


def ensure_self_signed(cert_path: Path, key_path: Path, fqdn: str, domain: str) -> bool:
    """Create the key and certificate if either is missing; True if created."""
    if cert_path.exists() and key_path.exists():
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])
    now = datetime.datetime.now(datetime.UTC)
    san: list[x509.GeneralName] = [x509.DNSName(fqdn), x509.DNSName(domain),
                                   x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(cert_path.parent, 0o755)
    write_atomic(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return True


class CertificatePair(NamedTuple):
    fingerprint: str  # what `appliance apply` compares to see a dropped-in certificate
    expires: datetime.datetime


def check_pair(cert_path: Path, key_path: Path) -> CertificatePair:
    """A certificate and key that belong together, read and parsed once; ValueError
    saying what is wrong when the services could not load them."""
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {e.filename}: {e.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)  # the first one: the server's
    except ValueError:
        raise ValueError(f"{cert_path} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{key_path} is not a PEM private key without a passphrase") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ValueError(f"{key_path} is not the key of the certificate in {cert_path}")
    # An expired certificate is served all the same (status and apply warn): refusing it
    # would stop every setting change, and a restart, over a renewal that came late.
    return CertificatePair(hashlib.sha256(cert_pem + b"\0" + key_pem).hexdigest(),
                           cert.not_valid_after_utc)


def share_key(cert_path: Path, key_path: Path, group: str) -> None:
    """Let GROUP read the pair (key 0640, certificate 0644, both root's): the SMTP
    daemons re-read them after dropping root, so a new certificate needs no restart.
    They hold the key in memory anyway; a file they can read exposes nothing more."""
    gid = grp.getgrnam(group).gr_gid
    for path, mode in ((key_path, 0o640), (cert_path, 0o644)):
        os.chown(path, 0, gid)
        os.chmod(path, mode)
