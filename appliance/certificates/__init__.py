"""tls.acme: the appliance's certificate from an ACME CA (RFC 8555, e.g. Let's Encrypt).

- names.py: which names the certificate carries (the host name, and the mta-sts.,
  autoconfig. and autodiscover. names of each mail domain that reach this appliance)
- order.py: one order with certbot's `acme` library: the account key on the volume,
  HTTP-01 answered by nginx on port 80 from paths.ACME_CHALLENGES, finalize
- state.py: what the last order did (its error, when to try again) on the volume
- renew.py: when an order is due (two thirds of the lifetime, backoff after a failure),
  the new pair staged and checked, then swapped for tls/cert.pem and key.pem with the old
  pair kept in tls/previous/

`appliance cert renew` (commands/cert.py) then runs `appliance apply`, whose certificate
check sees the new fingerprint and reloads every TLS service without a restart. A failed
order changes no file but the state: the old certificate is served on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Config


def health(config: Config | None) -> tuple[list[str], list[str]]:
    """(facts, problems) for `appliance status` and the console: where certificates come
    from, when the next renewal is, and a failed order with the CA's words."""
    from appliance import paths
    from appliance.certificates import renew, state

    if config is None or not config.data["tls"]["acme"]:
        return [], []
    st = state.load(paths.ACME_DIR / state.STATE_FILE)
    facts = [f"ACME: {config.data['tls']['acme_directory']}"]
    when = renew.renewal_time(paths.TLS_CERT)
    try:
        ours = renew.pem_fingerprint(paths.TLS_CERT.read_bytes()) == st.issued_fingerprint
    except OSError:
        ours = False
    if when is not None and ours:
        facts[0] += f", renews from {when:%Y-%m-%d}"
    elif not st.last_error:
        facts[0] += ", the certificate in place is not from it yet: ordering one"
    if not st.last_error:
        return facts, []
    return facts, [f"ACME order failed at {state.when(st.last_error_at)}: {st.last_error} "
                   f"(the current certificate stays; next try {state.when(st.next_try)}, or "
                   "`appliance cert renew`)"]
