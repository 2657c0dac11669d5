"""The one DNS resolver every plugin uses: async dnspython with timeouts and a cache.

Answers are plain Python values. "No such name" and "no record of that type" are empty
answers; a timeout or server failure raises DNSTempError, which plugins turn into a
4xx or a pass, never a 5xx. Nameservers come from the container's /etc/resolv.conf
unless the settings name others.

Sync libraries (pyspf, dkimpy) run in worker threads and call `sync_txt` etc., which
hop back onto the event loop so all lookups share one resolver and one cache.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.txtbase import TXTBase

T = TypeVar("T")


class DNSTempError(Exception):
    """The question could not be answered now (timeout, SERVFAIL, no nameserver)."""


class Resolver:
    def __init__(self, nameservers: Sequence[str] = (), timeout: float = 5.0) -> None:
        if nameservers:
            self._r = dns.asyncresolver.Resolver(configure=False)
            self._r.nameservers = list(nameservers)
        else:
            self._r = dns.asyncresolver.Resolver()
        self._r.lifetime = timeout
        self._r.timeout = min(timeout, 2.0)
        self._r.cache = dns.resolver.LRUCache(50000)
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def nameservers(self) -> list[str]:
        return [str(n) for n in self._r.nameservers]

    async def query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """Records of one type; [] for NXDOMAIN or no data; DNSTempError otherwise."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        try:
            answer = await self._r.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.name.NameTooLong, dns.exception.SyntaxError):
            return []  # a name that cannot exist (label too long, empty label...)
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.LifetimeTimeout) as e:
            raise DNSTempError(f"{rdtype} {name}: {e.__class__.__name__}") from None
        return list(answer.rrset or [])

    # query() returns the generic Rdata; each record type's class has its own fields
    async def a(self, name: str) -> list[str]:
        return [cast(A, r).address for r in await self.query(name, "A")]

    async def aaaa(self, name: str) -> list[str]:
        return [cast(AAAA, r).address for r in await self.query(name, "AAAA")]

    async def txt(self, name: str) -> list[str]:
        return [b"".join(cast(TXTBase, r).strings).decode("utf-8", "replace")
                for r in await self.query(name, "TXT")]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        records = [cast(MX, r) for r in await self.query(name, "MX")]
        return sorted((r.preference, r.exchange.to_text(omit_final_dot=True)) for r in records)

    async def ptr(self, ip: str) -> list[str]:
        name = dns.reversename.from_address(ip).to_text()
        return [cast(PTR, r).target.to_text(omit_final_dot=True)
                for r in await self.query(name, "PTR")]

    # -- for libraries that only do blocking DNS (run them in a thread) ----------------

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking library call in a worker thread; its DNS goes via sync_query."""
        self.loop = asyncio.get_running_loop()
        return await asyncio.to_thread(fn, *args)

    def sync_query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """Blocking lookup for code running under `in_thread` (never on the loop)."""
        assert self.loop is not None, "call the library through in_thread()"
        fut = asyncio.run_coroutine_threadsafe(self.query(name, rdtype), self.loop)
        return fut.result(self.timeout + 1)


def reverse_ip(ip: str) -> str:
    """The DNSBL form of an address: 1.2.3.4 -> 4.3.2.1, IPv6 by nibbles."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return dns.reversename.from_address(str(addr)).to_text(omit_final_dot=True).rsplit(
        ".", 2)[0]
