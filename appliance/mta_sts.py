"""MTA-STS (RFC 8461): the policy the appliance publishes for its mail domains.

nginx serves the text at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (webmail's
nginx.conf, file rendered at apply); print-dns and `dns check` publish and compare the
`_mta-sts.DOMAIN` TXT record, whose id must change whenever the text does, or sending
servers keep the policy they cached.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Config

MODES = ("testing", "enforce", "none")
MAX_AGE_LIMIT = 31557600  # RFC 8461 section 3.2: at most a year
WELL_KNOWN = "/.well-known/mta-sts.txt"


def policy_text(hostname: str, mode: str, max_age: int) -> str:
    """The policy file: RFC 8461's key/value lines, our one MX. Lines end in LF, which
    its grammar allows beside CRLF (sts-policy-term); apply compares files as text."""
    if mode not in MODES:
        raise ValueError(f"MTA-STS mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        raise ValueError(f"MTA-STS max_age must be 0 to {MAX_AGE_LIMIT}, not {max_age}")
    lines = ["version: STSv1", f"mode: {mode}", f"mx: {hostname.rstrip('.').lower()}",
             f"max_age: {max_age}"]
    return "\n".join(lines) + "\n"


def policy(config: Config) -> str:
    """The policy this configuration publishes (tls.mta_sts_*): what nginx serves and
    what print-dns's TXT id is made from, so the two cannot drift apart."""
    t = config.data["tls"]
    return policy_text(config.fqdn, t["mta_sts_mode"], t["mta_sts_max_age"])


def policy_id(text: str) -> str:
    """The TXT record's id: 20 hex digits of the text's SHA-256 (1-32 alphanumerics),
    new whenever the policy changes, the same for the same text."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def txt_record(text: str) -> str:
    """The value of `_mta-sts.DOMAIN` TXT for this policy."""
    return f"v=STSv1; id={policy_id(text)}"
