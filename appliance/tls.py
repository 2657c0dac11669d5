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
    cert_pem: bytes  # the bytes checked, so exactly these are handed on
    key_pem: bytes


def fingerprint(cert_pem: bytes, key_pem: bytes) -> str:
    """One pair's identity: apply's "new certificate?", the daemons' "serving what?"."""
    return hashlib.sha256(cert_pem + b"\0" + key_pem).hexdigest()


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
    return CertificatePair(fingerprint(cert_pem, key_pem), cert.not_valid_after_utc,
                           cert_pem, key_pem)


def install_for_smtpd(pair: CertificatePair, folder: Path, group: str) -> None:
    """The SMTP daemons' own copy of the checked pair, in /run: they run without root and
    re-read it on SIGHUP, so a renewal needs no restart. The admin's files on the volume
    keep their owner and mode; this copy is readable by GROUP only (it holds the key in
    memory anyway) and gone with the container."""
    owner, gid = os.geteuid(), grp.getgrnam(group).gr_gid  # root's, in the container
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chown(folder, owner, gid)
    os.chmod(folder, 0o750)
    # the key first: a daemon reloading in between finds a pair that does not match,
    # refuses it and keeps serving the old one
    for name, data, mode in (("key.pem", pair.key_pem, 0o640), ("cert.pem", pair.cert_pem,
                                                                 0o644)):
        write_atomic(folder / name, data, mode=mode)
        os.chown(folder / name, owner, gid)


def installed_for_smtpd(pair: CertificatePair, folder: Path) -> bool:
    try:
        return ((folder / "cert.pem").read_bytes(), (folder / "key.pem").read_bytes()) == \
            (pair.cert_pem, pair.key_pem)
    except OSError:
        return False
