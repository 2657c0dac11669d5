"""The container's network as the console shows it, and what `apply` does to it.

Interfaces and routes come from iproute2's JSON output; the MTU is set with `ip link`
(the container needs NET_ADMIN); `probe_pmtu` runs tracepath; `forwarder_warning`
says when a chosen forwarder is one that block lists refuse.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass, field

from appliance import paths
from appliance.config import Config

TIMEOUT_S = 30
GIVEN_MTU = paths.SUPERVISOR_SOCKET.parent / "interface-mtu.json"  # per container start

# Resolvers of the big public DNS services. Spamhaus, URIBL and SURBL refuse (or answer
# wrongly) queries that arrive through them, so DNSBL/RHSBL/URIBL checks would pass
# everything (the seeds' URIBL caveat).
PUBLIC_RESOLVERS = {
    "8.8.8.8": "Google", "8.8.4.4": "Google", "2001:4860:4860::8888": "Google",
    "2001:4860:4860::8844": "Google",
    "1.1.1.1": "Cloudflare", "1.0.0.1": "Cloudflare", "2606:4700:4700::1111": "Cloudflare",
    "2606:4700:4700::1001": "Cloudflare",
    "9.9.9.9": "Quad9", "149.112.112.112": "Quad9", "2620:fe::fe": "Quad9",
    "208.67.222.222": "OpenDNS", "208.67.220.220": "OpenDNS",
    "94.140.14.14": "AdGuard", "94.140.15.15": "AdGuard",
    "8.26.56.26": "Comodo", "8.20.247.20": "Comodo",
    "64.6.64.6": "Verisign", "64.6.65.6": "Verisign",
    "185.228.168.9": "CleanBrowsing", "76.76.2.0": "Control D",
}


class NetworkError(Exception):
    """An interface could not be read or changed; the message says why."""


@dataclass
class Interface:
    name: str
    state: str
    mtu: int
    addresses: list[str] = field(default_factory=list)  # CIDR


@dataclass
class Route:
    destination: str
    gateway: str
    device: str


def _ip_json(*args: str) -> list[dict]:
    try:
        proc = subprocess.run(["ip", "-j", *args], capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetworkError(f"ip {' '.join(args)}: {e}") from None
    if proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return json.loads(proc.stdout or "[]")


def interfaces() -> list[Interface]:
    out = []
    for link in _ip_json("addr", "show"):
        out.append(Interface(
            name=link["ifname"], state=link.get("operstate", "UNKNOWN"),
            mtu=int(link.get("mtu", 0)),
            addresses=[f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])],
        ))
    return out


def routes() -> list[Route]:
    return [Route(r.get("dst", "?"), r.get("gateway", ""), r.get("dev", ""))
            for r in _ip_json("route", "show")]


def interface_mtu(name: str) -> int:
    for link in _ip_json("link", "show", "dev", name):
        return int(link["mtu"])
    raise NetworkError(f"no interface {name}")


def set_mtu(name: str, mtu: int) -> str:
    """Give interface NAME this MTU; returns what happened, raises NetworkError."""
    if interface_mtu(name) == mtu:
        return f"{name}: mtu {mtu} (already)"
    proc = subprocess.run(["ip", "link", "set", "dev", name, "mtu", str(mtu)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        why = proc.stderr.strip()
        if "not permitted" in why:
            why += " (the container needs the NET_ADMIN capability; the TCP MSS clamp " \
                   "of the SMTP listeners applies anyway)"
        raise NetworkError(f"{name}: mtu {mtu} not set: {why}")
    return f"{name}: mtu {mtu}"


def remember_given_mtu(name: str) -> None:
    """At container start, before any change: the MTU Docker gave the interface, which
    `mtu = 0` later restores."""
    try:
        GIVEN_MTU.parent.mkdir(parents=True, exist_ok=True)
        GIVEN_MTU.write_text(json.dumps({name: interface_mtu(name)}))
    except (OSError, NetworkError):
        pass  # then 0 leaves the interface as it is


def _given_mtu(name: str) -> int | None:
    try:
        return json.loads(GIVEN_MTU.read_text()).get(name)
    except (OSError, ValueError):
        return None


def apply_mtu(config: Config) -> str | None:
    """Set [network] mtu on its interface; 0 restores the MTU the container was given.
    None when there is nothing to set."""
    net = config.data["network"]
    mtu = net["mtu"] or _given_mtu(net["interface"])
    return set_mtu(net["interface"], mtu) if mtu else None


@dataclass
class Probe:
    host: str
    pmtu: int | None  # the smallest path MTU tracepath reported
    transcript: str
    error: str = ""


PMTU_RE = re.compile(r"\bpmtu (\d+)")


def probe_pmtu(host: str, max_hops: int = 16, timeout: float = 60) -> Probe:
    """tracepath to HOST: the smallest path MTU on the way."""
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        return Probe(host, None, "", "not a host name or address")
    try:
        proc = subprocess.run(["tracepath", "-n", "-m", str(max_hops), host],
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return Probe(host, None, "", "tracepath is not installed")
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        found = [int(m) for m in PMTU_RE.findall(out)]
        return Probe(host, min(found) if found else None, out,
                     f"no answer within {timeout:.0f} s")
    out = proc.stdout + proc.stderr
    found = [int(m) for m in PMTU_RE.findall(out)]
    error = "" if proc.returncode == 0 else (proc.stderr.strip() or f"exit {proc.returncode}")
    return Probe(host, min(found) if found else None, out, error)


def forwarder_warning(forwarders: list[str], config: Config) -> str | None:
    """A warning when block lists are on and a forwarder is a big public resolver."""
    public = []
    for f in forwarders:
        try:
            addr = str(ipaddress.ip_address(f))
        except ValueError:
            continue
        if addr in PUBLIC_RESOLVERS:
            public.append(f"{addr} ({PUBLIC_RESOLVERS[addr]})")
    smtpd = config.data["smtpd"]
    lists = [name.upper() for name in ("dnsbl", "rhsbl", "uribl") if smtpd[name]["enabled"]]
    if not public or not lists:
        return None
    verb = "is" if len(lists) == 1 else "are"
    which = ("is a large public resolver" if len(public) == 1
             else "are large public resolvers")
    return (f"{', '.join(lists)} {verb} on, and {', '.join(public)} {which}: block lists "
            "such as Spamhaus and URIBL refuse queries that come through them, so listed "
            "senders would pass. Full recursion (no forwarders) asks the lists directly.")
