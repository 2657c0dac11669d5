"""When to order, and the swap: the new pair staged, checked, then put in place of
tls/cert.pem and key.pem with the old pair kept in tls/previous/.

Due (for the scheduler's `cert renew --if-due`) when tls.acme is on and the backoff after
a failure has passed, and: the certificate in place is not the one the last order
installed (the self-signed one, say), two thirds of its lifetime have passed, or the names
it should carry changed (a domain added, an mta-sts. name published).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from appliance import paths
from appliance.certificates import names as names_mod
from appliance.certificates import order, state
from appliance.config import write_atomic
from appliance.tls import CertificatePair, check_pair

if TYPE_CHECKING:
    from appliance.config import Config

log = logging.getLogger(__name__)

RENEW_AT = 2 / 3  # of the lifetime


def pem_fingerprint(cert_pem: bytes) -> str:
    return hashlib.sha256(cert_pem).hexdigest()


def cert_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]


def renewal_due_at(cert: x509.Certificate) -> dt.datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * RENEW_AT


def renewal_time(cert_path: Path) -> dt.datetime | None:
    try:
        return renewal_due_at(x509.load_pem_x509_certificate(cert_path.read_bytes()))
    except (OSError, ValueError):
        return None


def due(st: state.State, cert_pem: bytes | None, wanted: list[str] | None,
        now: float) -> str | None:
    """Why an order is due now, or None. WANTED None: the names are not looked at (the
    probe is the costly part: it runs only when nothing else made the order due)."""
    if now < st.next_try:
        return None
    if cert_pem is None:
        return "no certificate"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "the certificate is unreadable"
    if pem_fingerprint(cert_pem) != st.issued_fingerprint:
        return "the certificate in place was not issued by the ACME CA"
    when = renewal_due_at(cert)
    if dt.datetime.fromtimestamp(now, dt.UTC) >= when:
        return f"two thirds of its lifetime passed on {when:%Y-%m-%d}"
    # only a name that came: one that went (a probe that failed once) waits for the
    # renewal, so a flapping name cannot reorder every tick into the CA's rate limits
    if wanted is not None and (new := set(wanted) - set(cert_names(cert))):
        return "new names: " + ", ".join(sorted(new))
    return None


def swap(key_pem: bytes, chain_pem: bytes, names: list[str]) -> CertificatePair:
    """Stage the new pair, check it (check_pair, its names, its dates), then keep the old
    pair in tls/previous/ and move the new one in place. ValueError, nothing replaced,
    when the new pair is not good."""
    cert_path, key_path = paths.TLS_CERT, paths.TLS_KEY
    staging, previous = paths.ACME_DIR / "staging", paths.TLS_PREVIOUS
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    new_cert, new_key = staging / "cert.pem", staging / "key.pem"
    write_atomic(new_key, key_pem, mode=0o600)
    write_atomic(new_cert, chain_pem, mode=0o644)
    pair = check_pair(new_cert, new_key)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    missing = set(names) - set(cert_names(cert))
    if missing:
        raise ValueError("the new certificate lacks " + ", ".join(sorted(missing)))
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc - dt.timedelta(minutes=5) <= now < \
            cert.not_valid_after_utc:
        raise ValueError(f"the new certificate is not valid now (from "
                         f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                         f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)")
    if cert_path.exists() and key_path.exists():
        previous.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(previous / "key.pem", key_path.read_bytes(), mode=0o600)
        write_atomic(previous / "cert.pem", cert_path.read_bytes(), mode=0o644)
    from appliance.apply import lock

    with lock():  # no apply reads the key of one pair and the certificate of the other
        new_key.replace(key_path)
        new_cert.replace(cert_path)
    return pair


@dataclass
class Outcome:
    renewed: bool
    message: str
    names: list[str]


def _wanted(config: Config, probe: names_mod.Probe | None) -> list[str]:
    return names_mod.wanted(config, paths.ACME_CHALLENGES, probe)


def _order(wanted: list[str], tls: dict[str, Any]) -> CertificatePair:
    issued = order.issue(wanted, directory=tls["acme_directory"], email=tls["acme_email"],
                         ca_bundle=tls["acme_ca_bundle"], account_folder=paths.ACME_DIR,
                         challenges=paths.ACME_CHALLENGES)
    return swap(issued.key_pem, issued.fullchain_pem, wanted)


@contextmanager
def _locked() -> Iterator[None]:
    paths.ACME_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(paths.ACME_DIR / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def renew(config: Config, *, if_due: bool, now: float | None = None,
          probe: names_mod.Probe | None = None) -> Outcome:
    """Order and install a certificate (if_due: only when due()); OrderFailed (recorded
    in the state, the old certificate kept) when the CA gave none. PROBE: whether a name
    reaches us (default: over HTTP on port 80, names.http_probe)."""
    tls = config.data["tls"]
    with _locked():
        path = paths.ACME_DIR / state.STATE_FILE
        st = state.load(path)
        now = time.time() if now is None else now
        try:
            cert_pem: bytes | None = paths.TLS_CERT.read_bytes()
        except OSError:
            cert_pem = None
        wanted: list[str] | None = None
        if if_due:
            if not tls["acme"]:
                return Outcome(False, "tls.acme is off", [])
            reason = due(st, cert_pem, None, now)
            if reason is None and now >= st.next_try:
                wanted = _wanted(config, probe)
                reason = due(st, cert_pem, wanted, now)
            if reason is None:
                when = renewal_time(paths.TLS_CERT)
                later = f"; renewal from {when:%Y-%m-%d}" if when else ""
                if now < st.next_try:
                    later = f"; after a failure, the next try is at {state.when(st.next_try)}"
                return Outcome(False, "not due" + later, st.names)
            log.info("ordering a certificate: %s", reason)
        started = time.monotonic()
        try:
            if wanted is None:  # probed once: the names that made it due are ordered
                wanted = _wanted(config, probe)
            try:
                pair = _order(wanted, tls)
            except order.OrderFailed as e:
                # a name that reached us but that the CA could not validate (CAA, a
                # split view) must not cost the host its certificate: once without it
                kept = [n for n in wanted if n not in e.refused]
                if not e.refused or kept == wanted or kept[:1] != wanted[:1]:
                    raise
                log.warning("ordering without %s: %s", ", ".join(e.refused), e)
                wanted = kept
                pair = _order(wanted, tls)
        except Exception as e:  # noqa: BLE001 - any failure: recorded, backed off, old pair kept
            message = str(e) if isinstance(e, (order.OrderFailed, ValueError)) else \
                f"{type(e).__name__}: {e}"
            state.save(path, state.failed(st, message, now))
            raise order.OrderFailed(message) from e
        took = time.monotonic() - started
        state.save(path, state.succeeded(st, pem_fingerprint(pair.cert_pem), wanted, now,
                                         took))
        return Outcome(True, f"issued for {', '.join(wanted)} in {took:.1f} s", wanted)
