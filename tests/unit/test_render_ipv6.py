"""IPv6 in every listener and client: Postfix delivers over it, Dovecot and nginx listen
on it, Unbound queries over it where the host has an IPv6 route."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.config import parse
from appliance.services import dovecot, postfix, unbound, webmail

BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'
PROXIES = '[network]\ntrusted_proxies = ["198.51.100.1/32", "2001:db8::/64"]\n'


def _setting(conf: str, key: str) -> str:
    found = re.findall(rf"^{re.escape(key)} = (.*)$", conf, re.MULTILINE)
    assert len(found) == 1, (key, found)
    return found[0]


def test_postfix_delivers_over_both_families_and_trusts_both_loopbacks() -> None:
    conf = postfix.main_cf(parse(BASE))
    assert _setting(conf, "inet_protocols") == "all"
    assert _setting(conf, "inet_interfaces") == "loopback-only"
    assert _setting(conf, "mynetworks") == "127.0.0.0/8 [::1]/128"
    assert _setting(conf, "smtpd_authorized_xforward_hosts") == "127.0.0.0/8 [::1]/128"


def test_dovecot_listens_on_every_ipv4_and_ipv6_address() -> None:
    conf = dovecot.dovecot_conf(parse(BASE))
    assert _setting(conf, "listen") == "*, ::"
    assert _setting(conf, "login_trusted_networks") == "127.0.0.1/32 ::1/128"


@pytest.mark.parametrize("extra", ["", PROXIES], ids=["direct", "proxied"])
def test_every_nginx_listener_has_its_ipv6_twin(extra: str) -> None:
    lines = [line.strip().rstrip(";") for line in
             webmail.nginx_conf(parse(BASE + extra)).splitlines()]
    v4 = [line.removeprefix("listen ") for line in lines
          if line.startswith("listen ") and not line.startswith("listen [::]:")]
    v6 = [line.removeprefix("listen [::]:") for line in lines
          if line.startswith("listen [::]:")]
    assert v4 and sorted(v4) == sorted(v6)


@pytest.mark.parametrize(("ipv6", "line"), [(True, "do-ip6: yes"), (False, "do-ip6: no")])
def test_unbound_queries_over_ipv6_only_with_an_ipv6_route(ipv6: bool, line: str) -> None:
    conf = unbound.unbound_conf(parse(BASE), ipv6=ipv6)
    assert f"\n    {line}\n" in conf
    assert "\n    interface: 127.0.0.1\n" in conf  # it still listens on loopback only


def _routes(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "ipv6_route"
    path.write_text("".join(line + "\n" for line in lines))
    return path


ZERO = "0" * 32
# /proc/net/ipv6_route: dest, plen, src, plen, next hop, metric, refcnt, use, flags, dev
DEFAULT_VIA_ETH0 = (f"{ZERO} 00 {ZERO} 00 20010db8010000000000000000000001 00000400 "
                    "00000001 00000000 00000003     eth0")
LINK_ROUTE = (f"20010db8010000000000000000000000 40 {ZERO} 00 {ZERO} 00000100 00000001 "
              "00000000 00000001     eth0")
# What a container whose network has no IPv6 shows: the kernel's reject route on lo
REJECT_ON_LO = f"{ZERO} 00 {ZERO} 00 {ZERO} ffffffff 00000001 00000000 00200200       lo"


def test_the_host_has_ipv6_with_a_default_route(tmp_path: Path) -> None:
    assert unbound.host_has_ipv6(_routes(tmp_path, LINK_ROUTE, DEFAULT_VIA_ETH0))


@pytest.mark.parametrize("lines", [
    (REJECT_ON_LO, REJECT_ON_LO),  # Docker's default: IPv6 off in the container
    (LINK_ROUTE,),  # an IPv6 network, but no way out of it
    (),
], ids=["reject-route", "link-only", "empty"])
def test_the_host_has_no_ipv6_without_a_usable_default_route(tmp_path: Path,
                                                             lines: tuple[str, ...]) -> None:
    assert not unbound.host_has_ipv6(_routes(tmp_path, *lines))


def test_a_kernel_without_ipv6_has_no_route_table(tmp_path: Path) -> None:
    assert not unbound.host_has_ipv6(tmp_path / "missing")
