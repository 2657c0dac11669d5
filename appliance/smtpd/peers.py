"""Which plugins run, in which order, for which peer (SME's `peers` plugin).

SME Server keeps one plugin list for its local networks and one for everyone else, and
separate lists for the submission daemons (seed 002). We keep that as one table: the
order is SME's (the numbers of its peers/ fragments), and each plugin names the peer
classes it runs for:

    internet       port 25, a client outside network.local_networks
    local          port 25, a client inside network.local_networks
    authenticated  after a successful AUTH on any port, and everything on 465/587
                   (those ports serve only our own users)

The spam checks (karma, earlytalker, helo, headers, DNS lists, SPF/DKIM/DMARC, naughty,
badrcptto)
are skipped for local and authenticated peers, as in SME; disclaimers and DKIM signing
apply only to mail our users send. A plugin whose section has `enabled = false` is left
out of every chain.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from appliance.config.schema import SUBMISSION_DAEMONS as SUBMISSION_DAEMONS
from appliance.security.bans import client_key
from appliance.smtpd.settings import PluginSettings

INTERNET, LOCAL, AUTHENTICATED = "internet", "local", "authenticated"
PEERS = (INTERNET, LOCAL, AUTHENTICATED)
ALL = PEERS
OUTSIDE = (INTERNET,)
INSIDE = (LOCAL, AUTHENTICATED)

TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("whitelists", OUTSIDE),  # first, so every later check sees its exemptions
    ("tarpit", OUTSIDE),  # (qmail tarpitcount) before any RCPT verdict: slows them all
    ("auth", ALL),  # 05auth
    ("karma", OUTSIDE),  # 09karma
    ("earlytalker", OUTSIDE),  # 10earlytalker
    ("bogus_bounce", ALL),  # 11bogus_bounce
    ("count_unrecognized_commands", OUTSIDE),  # 12
    ("bcc", ALL),  # 13bcc
    ("relay", ALL),  # 14relay
    ("sender_login", (AUTHENTICATED,)),  # (not in SME) users send only as themselves
    ("send_limits", (AUTHENTICATED,)),  # (not in SME) messages per user and hour
    ("helo", OUTSIDE),  # 15helo
    ("resolvable_fromhost", OUTSIDE),  # 16
    ("headers", OUTSIDE),  # 17headers (qpsmtpd exempts relay clients and our users)
    ("loadcheck", OUTSIDE),  # 19loadcheck
    ("rhsbl", OUTSIDE),  # 20rhsbl
    ("spf", OUTSIDE),  # 221spf
    ("dkim", OUTSIDE),  # 222dkim
    ("dmarc", OUTSIDE),  # 223dmarc
    ("dnsbl", OUTSIDE),  # 22dnsbl
    ("naughty", OUTSIDE),  # 23naughty
    ("uribl", (INTERNET, LOCAL)),  # 24uribl
    ("badmailfrom", ALL),  # 30badmailfrom
    ("badmailfromto", (INTERNET, LOCAL)),  # 31check_badmailfromto (SME wiki)
    ("badrcptto", OUTSIDE),  # 34badrcptto, 34badrcptto_ext
    ("check_smtp_forward", ALL),  # 37
    ("check_goodrcptto", ALL),  # 38
    ("greylisting", OUTSIDE),  # after the recipient checks: defers only mail we would take
    ("rcpt_ok", ALL),  # 39
    ("tnef2mime", ALL),  # 62
    ("pattern_filter", ALL),  # 62pattern_filter, after winmail.dat is unpacked
    ("disclaimer", INSIDE),  # 65
    ("spamassassin", ALL),  # 70, 71forcespamcheck: the plugin skips our own users
    ("clamav", ALL),  # 80 (scan_all)
    ("dkim_sign", INSIDE),  # queue hook: signs the final message
)



def enabled(name: str, plugin_settings: PluginSettings) -> bool:
    return plugin_settings.enabled(name)


def chain(daemon: str, peer: str, plugin_settings: PluginSettings) -> list[str]:
    """The plugin names, in order, for a daemon and a peer class."""
    if daemon in SUBMISSION_DAEMONS:
        peer = AUTHENTICATED
    return [name for name, peers in TABLE if peer in peers and enabled(name, plugin_settings)]


def ip_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client address in one spelling (IPv4-mapped IPv6 as IPv4); None if not one."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def host_key(ip: str) -> str:
    """What one client host is counted as: its IPv4 address, or its IPv6 /64 (a host
    owns at least that much, and may pick any address of it for each connection); the
    same key its failed logins and bans are counted under."""
    return client_key(ip)


class LocalNetworks:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __contains__(self, ip: object) -> bool:
        addr = ip_address(str(ip))
        return addr is not None and any(addr in net for net in self.networks)


def peer_of(ip: str, local: LocalNetworks) -> str:
    return LOCAL if ip in local else INTERNET
