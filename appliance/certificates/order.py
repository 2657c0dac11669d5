"""One ACME order (RFC 8555) with certbot's `acme` library: the account (its key on the
volume, registered again on every order: a known key only gets its account's URL back),
a new key and CSR for the names, HTTP-01 answered from paths.ACME_CHALLENGES (nginx serves
it on port 80), then finalize and download the chain."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.config import write_atomic

log = logging.getLogger(__name__)

ACCOUNT_KEY = "account.key"
USER_AGENT = "mail-appliance (certbot acme library)"
NETWORK_TIMEOUT_S = 30
ORDER_DEADLINE_S = 120  # validation and issuance, after the challenges are answered
KEY_BITS = 2048  # what Let's Encrypt's clients use; every mail client speaks RSA


class OrderFailed(Exception):
    """The order did not give a certificate; str() is the CA's (or the network's) words,
    `refused` the names whose validation failed (the others may still be ordered)."""

    def __init__(self, message: str, refused: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Issued:
    key_pem: bytes
    fullchain_pem: bytes


def _new_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def account_key(folder: Path) -> bytes:
    """The ACME account's key (PEM), made on first use, kept on the volume (0600)."""
    path = folder / ACCOUNT_KEY
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = _new_key()
    write_atomic(path, pem, mode=0o600)
    return pem


def describe(e: BaseException) -> str:
    """What went wrong, in the CA's words where it gave any."""
    from acme import errors, messages

    if isinstance(e, messages.Error):
        what = e.detail or e.description or e.typ
        return f"the CA refused: {what} ({e.typ})"
    if isinstance(e, errors.ValidationError):
        parts = []
        for authzr in e.failed_authzrs:
            for challenge in authzr.body.challenges:
                if challenge.error is not None:
                    err = challenge.error
                    parts.append(f"{authzr.body.identifier.value}: "
                                 f"{err.detail or err.description} ({err.typ})")
        return "validation failed: " + ("; ".join(parts) or str(e))
    if isinstance(e, errors.TimeoutError):
        return f"the CA did not finish the order within {ORDER_DEADLINE_S} s"
    import requests

    if isinstance(e, requests.exceptions.RequestException):
        return f"cannot reach the ACME server: {e}"
    return f"{type(e).__name__}: {e}"


def issue(names: list[str], *, directory: str, email: str, ca_bundle: str,
          account_folder: Path, challenges: Path) -> Issued:
    """A certificate for NAMES (the first is the subject); OrderFailed saying why not."""
    try:
        return _issue(names, directory, email, ca_bundle, account_folder, challenges)
    except OrderFailed:
        raise
    except Exception as e:  # noqa: BLE001 - any failure is a failed order, kept in state
        from acme import errors

        refused = tuple(a.body.identifier.value for a in e.failed_authzrs) \
            if isinstance(e, errors.ValidationError) else ()
        raise OrderFailed(describe(e), refused) from e


def _issue(names: list[str], directory: str, email: str, ca_bundle: str,
           account_folder: Path, challenges: Path) -> Issued:
    import josepy
    from acme import challenges as acme_challenges
    from acme import client, crypto_util, errors, messages

    from appliance.certificates.names import challenge_folder

    if ca_bundle and not Path(ca_bundle).is_file():
        raise OrderFailed(f"tls.acme_ca_bundle {ca_bundle} is not a file")
    private = serialization.load_pem_private_key(account_key(account_folder), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    jwk = josepy.JWKRSA(key=private)
    # requests takes a CA bundle's path where acme's type says bool
    verify: bool = ca_bundle or True  # type: ignore[assignment]
    net = client.ClientNetwork(jwk, user_agent=USER_AGENT, verify_ssl=verify,
                               timeout=NETWORK_TIMEOUT_S)
    acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
    registration = messages.NewRegistration.from_data(
        email=email or None, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as e:  # this key has an account: use it
        net.account = messages.RegistrationResource(uri=e.location,
                                                    body=messages.Registration())
    key_pem = _new_key()
    order = acme.new_order(crypto_util.make_csr(key_pem, names))
    folder = challenge_folder(challenges)
    written: list[Path] = []
    try:
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue  # validated by an earlier order of this account
            challb = next((c for c in authzr.body.challenges
                           if isinstance(c.chall, acme_challenges.HTTP01)), None)
            if challb is None:
                raise OrderFailed(f"the CA offers no HTTP-01 challenge for "
                                  f"{authzr.body.identifier.value}")
            response, validation = challb.response_and_validation(jwk)
            path = folder / challb.chall.encode("token")
            write_atomic(path, validation, mode=0o644)
            written.append(path)
            acme.answer_challenge(challb, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=ORDER_DEADLINE_S)
        done = acme.poll_and_finalize(order, deadline)
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    return Issued(key_pem, done.fullchain_pem.encode())
