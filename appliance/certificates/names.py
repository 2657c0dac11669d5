"""Which names the certificate carries: system.hostname.domain always, and for each mail
domain mta-sts.D, autoconfig.D and autodiscover.D when they reach this appliance.

"Reach us" is decided by a self-probe: a random token is written to the HTTP-01 folder
and fetched as http://NAME/.well-known/acme-challenge/TOKEN, the name looked up through
the appliance's own resolver, exactly as the CA will. Behind a NAT that does not loop
back, no name answers from inside: a name whose addresses are the host name's (or
network.public_addresses) then counts as well. Any other name is left out: one that is
not published, or points elsewhere, would fail the whole order.
"""

from __future__ import annotations

import secrets
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.dns_records import ALIASES

if TYPE_CHECKING:
    from appliance.config import Config

PREFIXES = ALIASES  # the names print-dns publishes for each domain
PROBE_TIMEOUT_S = 5.0
CHALLENGE_PATH = "/.well-known/acme-challenge/"

Probe = Callable[[str], bool]


def candidates(config: Config) -> tuple[str, list[str]]:
    """(the host name, the extra names worth probing), lower case, no duplicates."""
    host = config.fqdn.lower()
    extra = []
    for domain in config.local_domains:
        for prefix in PREFIXES:
            name = f"{prefix}.{domain}".lower()
            if name != host and name not in extra:
                extra.append(name)
    return host, extra


def select(host: str, extra: list[str], probe: Probe) -> list[str]:
    """The host name first, then each extra name the probe says reaches us."""
    return [host] + [name for name in extra if probe(name)]


def challenge_folder(folder: Path) -> Path:
    """The folder nginx serves at /.well-known/acme-challenge/, readable by its workers."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    return folder


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not our token: never followed (a hostile name could otherwise send
    root's probe anywhere, e.g. to a loopback service)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def http_probe(folder: Path, port: int = 80, timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """A probe: does http://NAME:PORT/.well-known/acme-challenge/TOKEN return our token?"""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)

    def probe(name: str) -> bool:
        token = secrets.token_urlsafe(24)
        path = challenge_folder(folder) / token
        path.write_text(token)
        path.chmod(0o644)
        netloc = name if port == 80 else f"{name}:{port}"
        try:
            with opener.open(f"http://{netloc}{CHALLENGE_PATH}{token}",
                             timeout=timeout) as response:
                return bool(response.read(200).strip() == token.encode())
        except Exception:  # noqa: BLE001 - no name, nothing listening, not HTTP, not us
            return False
        finally:
            path.unlink(missing_ok=True)

    return probe


def address_probe(config: Config, lookup: Callable[[str, str], list[str]]) -> Probe:
    """A probe for a NAT without loopback: does NAME have the addresses the host name has
    (or network.public_addresses), through the appliance's resolver?"""
    import dns.exception

    def addresses(name: str) -> set[str]:
        try:
            return set(lookup(name, "A") + lookup(name, "AAAA"))
        except dns.exception.DNSException:
            return set()

    ours = {str(a) for a in config.data["network"]["public_addresses"]} or \
        addresses(config.fqdn)

    def probe(name: str) -> bool:
        found = addresses(name)
        return bool(found) and found <= ours

    return probe


def wanted(config: Config, folder: Path, probe: Probe | None = None) -> list[str]:
    host, extra = candidates(config)
    if probe is None:
        from appliance import dns_check

        by_http = http_probe(folder)
        by_address = address_probe(config, dns_check.Lookup(dns_check.resolver()))

        def probe(name: str) -> bool:
            return by_http(name) or by_address(name)

    return select(host, extra, probe)
