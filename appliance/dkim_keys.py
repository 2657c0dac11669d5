"""DKIM keys in SME Server's layout, and the DNS records to publish (`appliance print-dns`).

    <dir>/default/private    the key every domain signs with (RSA 2048, PEM, mode 0400,
    <dir>/default/public     owned by the SMTP daemons' user), its public half, and
    <dir>/default/selector   its selector
    <dir>/<domain>/private   optional: a key of its own for one domain (SME: "mkdir
    <dir>/<domain>/selector  domain.net; openssl genrsa -out private 2048 ...")

The selector of the default key is the setting smtpd.dkim_sign.selector (ensure_default_key
writes it to default/selector too, for SME's tools); a domain's own key uses its selector
file ("default" if there is none). `qpsmtpd-print-dns DOMAIN` is `appliance print-dns
[DOMAIN]` here: its DKIM record is dkim_txt() below, the other records are in
appliance/dns_records.py (seed 001).
"""

from __future__ import annotations

import base64
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.config.load import write_atomic

KEY_BITS = 2048
DEFAULT = "default"
OWNER = "qpsmtpd"  # the user the SMTP daemons run as (render.smtpd.RUN_AS)


def _chown(path: Path, owner: str) -> None:
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam(owner)
    except KeyError:
        return
    os.chown(path, pw.pw_uid, pw.pw_gid)


def public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_default_key(directory: str | os.PathLike[str], selector: str = DEFAULT,
                       bits: int = KEY_BITS, owner: str = OWNER) -> bool:
    """Create <dir>/default/{private,public,selector} where missing; True if a key was made.

    An existing private key is never replaced. The private key is mode 0400 and, when we
    run as root, owned by `owner` (the SMTP daemons sign with it).
    """
    d = Path(directory) / DEFAULT
    d.mkdir(parents=True, exist_ok=True)
    private, public, sel = d / "private", d / "public", d / "selector"
    created = False
    if not private.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        write_atomic(private, pem, 0o400)
        created = True
    _chown(private, owner)
    if created or not public.exists():
        write_atomic(public, public_pem(private.read_bytes()), 0o644)
    if not sel.exists() or sel.read_text().strip() != selector:
        write_atomic(sel, selector.encode() + b"\n", 0o644)
    return created


def _read_selector(path: Path) -> str:
    try:
        return path.read_text().strip() or DEFAULT
    except FileNotFoundError:
        return DEFAULT


def key_for(directory: str | os.PathLike[str], domain: str,
            default_selector: str = DEFAULT) -> tuple[str, Path] | None:
    """(selector, private key path) that signs `domain`'s mail, or None if no key exists."""
    base = Path(directory)
    own = base / domain.lower()
    if (own / "private").is_file():
        return _read_selector(own / "selector"), own / "private"
    if (base / DEFAULT / "private").is_file():
        return default_selector, base / DEFAULT / "private"
    return None


def _public_der(private_path: Path) -> bytes:
    public = private_path.with_name("public")
    if public.is_file():
        pem = public.read_bytes()
        key = serialization.load_pem_public_key(pem)
    else:
        key = serialization.load_pem_private_key(private_path.read_bytes(),
                                                 password=None).public_key()
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def default_selector(settings: Mapping[str, Any]) -> str:
    return str(settings.get("plugin_settings", {}).get("dkim_sign", {}).get("selector")
               or DEFAULT)


def dkim_txt(directory: str | os.PathLike[str], domain: str, selector: str = DEFAULT
             ) -> tuple[str, str] | None:
    """(record name, TXT text) of the key that signs `domain`, or None without a key."""
    found = key_for(directory, domain, selector)
    if found is None:
        return None
    sel, private = found
    p = base64.b64encode(_public_der(private)).decode()
    return f"{sel}._domainkey", f"v=DKIM1;k=rsa;p={p}"
