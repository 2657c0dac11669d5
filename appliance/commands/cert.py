"""`appliance cert renew [--if-due]` and `appliance cert status`: the ACME certificate
(tls.acme, appliance/certificates). A renewal that gave a new pair runs `appliance
apply`, which sees the new fingerprint and reloads every TLS service without a restart."""

from __future__ import annotations

import argparse
import sys

from appliance import paths
from appliance.commands import base
from appliance.config import ConfigError


def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status()
    return _renew(if_due=args.if_due)


def _renew(*, if_due: bool) -> int:
    from appliance.apply import apply
    from appliance.certificates import order, renew

    config = base.load_config()
    if not if_due and not config.data["tls"]["acme"]:
        raise ConfigError("tls.acme is off: `appliance config set tls.acme true` first")
    try:
        outcome = renew.renew(config, if_due=if_due)
    except order.OrderFailed as e:
        print(f"appliance: no new certificate, the current one stays: {e}", file=sys.stderr)
        return 1
    print(outcome.message)
    if not outcome.renewed and _served():
        return 0
    # read again: the order may have taken minutes, and an edit made meanwhile must not
    # be rolled back. Also when not renewed: a pair whose apply failed last time (the
    # state already says issued) is applied at the next tick, not left unserved
    plan = apply(base.load_config())
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for line in plan.reloaded:
        print(f"  {line}")
    return 0


def _served() -> bool:
    """Do the services run the pair on the volume (apply's record of what it loaded)?"""
    from appliance.tls import check_pair

    try:
        pair = check_pair(paths.TLS_CERT, paths.TLS_KEY)
        return paths.TLS_IN_USE.read_text().strip() == pair.fingerprint
    except (OSError, ValueError):
        return True  # nothing apply could load either: status reports the files


def _status() -> int:
    from cryptography import x509

    from appliance.certificates import renew, state

    config = base.load_config()
    tls = config.data["tls"]
    try:
        cert = x509.load_pem_x509_certificate(paths.TLS_CERT.read_bytes())
    except (OSError, ValueError) as e:
        print(f"certificate: unreadable ({e})")
        return 1
    st = state.load(paths.ACME_DIR / state.STATE_FILE)
    print(f"issuer:    {cert.issuer.rfc4514_string()}")
    print(f"names:     {', '.join(renew.cert_names(cert)) or cert.subject.rfc4514_string()}")
    print(f"serial:    {cert.serial_number:x}")
    print(f"not after: {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if not tls["acme"]:
        print("acme:      off (tls.acme)")
        return 0
    ours = renew.pem_fingerprint(paths.TLS_CERT.read_bytes()) == st.issued_fingerprint
    print(f"acme:      {tls['acme_directory']}" + ("" if ours else
          " (the certificate in place is not from it yet)"))
    if ours:
        print(f"renews:    from {renew.renewal_due_at(cert):%Y-%m-%d %H:%M} UTC")
    if st.last_success:
        print(f"last order: {state.when(st.last_success)}, {st.last_order_s:.1f} s")
    if st.last_error:
        print(f"last error: {state.when(st.last_error_at)}: {st.last_error}")
        print(f"next try:  {state.when(st.next_try)} ({st.failures} failures in a row)")
        return 1
    return 0
