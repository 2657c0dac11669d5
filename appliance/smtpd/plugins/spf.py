"""spf: Sender Policy Framework, RFC 7208 (SME sender_permitted_from, SPFRejectPolicy).

At MAIL FROM the client's address is checked against the sender domain's SPF record
(for the null sender: postmaster@<HELO name>, RFC 7208 §2.4) with pyspf. The result is
kept for dmarc (`txn.spf`, a SpfCheck(result, explanation, domain)) and for the
Authentication-Results header, and a Received-SPF header (RFC 7208 §9.1) is added to the
message after DATA. A pass earns karma, a fail or softfail costs karma.

`reject_policy` (SME SPFRejectPolicy) refuses mail on SPF alone, and only when the
domain publishes no DMARC policy (SME: a DMARC record, even p=none, means the dmarc
plugin decides): 0 never, 1 fail, 2 softfail too, 3 neutral too, 4 also permerror, no
SPF record (none), and temperror (deferred with 451, never refused). SME decides this at
data_post, after dmarc has looked at the From: domain; we decide at MAIL FROM, looking up
the DMARC record of the *envelope* domain (and its organizational domain), so the
refusal comes before the message is sent. A DNS timeout never causes a 5xx: the SPF
check then says temperror, and a DMARC lookup that times out means "do not refuse".

pyspf does its own blocking DNS. The check runs in a worker thread (resolver.in_thread),
and pyspf's module-level `DNSLookup` is replaced once, at import, by a function that
asks the resolver of the calling thread's check (a thread-local set around each check)
through `resolver.sync_query`, so SPF shares the daemon's resolver, cache and timeouts;
code that calls pyspf outside this plugin still gets pyspf's own lookup.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import threading
from typing import Any, cast

import spf
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.txtbase import TXTBase

from appliance.smtpd import replies
from appliance.smtpd.address import split_address
from appliance.smtpd.dmarc.evaluate import find_record
from appliance.smtpd.dns import DNSTempError, Resolver
from appliance.smtpd.hooks import Connection, SpfCheck, Transaction
from appliance.smtpd.mailauth import add_result, is_domain
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.recent import MISSING, Recent
from appliance.smtpd.results import Result, deny, denysoft
from appliance.smtpd.settings import Settings

HEADER_NOTE = "spf_header"  # txn.notes: the Received-SPF value, added at data_post

# Results refused at each reject_policy (when the domain has no DMARC record).
REFUSED: dict[int, frozenset[str]] = {
    0: frozenset(),
    1: frozenset({"fail"}),
    2: frozenset({"fail", "softfail"}),
    3: frozenset({"fail", "softfail", "neutral"}),
    4: frozenset({"fail", "softfail", "neutral", "permerror", "none", "temperror"}),
}

QUERY_TIME = 20  # seconds for one whole check (RFC 7208 §4.6.4)

# -- pyspf's DNS through our resolver ---------------------------------------------------

_local = threading.local()
# pyspf's own lookup (not spf.DNSLookup, which is ours after a module reload)
_pyspf_lookup = getattr(spf, "DNSLookup_dnspython", spf.DNSLookup)


def _dns_lookup(name: str, qtype: str, strict: Any = True, timeout: Any = None) -> list:
    """pyspf's DNSLookup: [((name, type), data)], spf.TempError when DNS fails."""
    resolver: Resolver | None = getattr(_local, "resolver", None)
    if resolver is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    try:
        records = resolver.sync_query(name, qtype)
    except DNSTempError as e:
        raise spf.TempError(f"DNS {e}") from None
    except concurrent.futures.TimeoutError:
        raise spf.TempError(f"DNS {qtype} {name}: timeout") from None
    out: list[tuple[tuple[str, str], Any]] = []
    for r in records:  # each of the type asked for (qtype)
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), cast(A | AAAA, r).address))
        elif qtype == "MX":
            mx = cast(MX, r)
            out.append(((name, qtype), (mx.preference, mx.exchange.to_text(omit_final_dot=True))))
        elif qtype == "PTR":
            out.append(((name, qtype), cast(PTR, r).target.to_text(omit_final_dot=True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), list(cast(TXTBase, r).strings)))
    return out


spf.DNSLookup = _dns_lookup


def _ip_literal(helo: str) -> bool:
    try:
        ipaddress.ip_address(helo.strip("[]").removeprefix("IPv6:"))
    except ValueError:
        return False
    return True



class Plugin(BasePlugin):
    name = "spf"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        policy = settings.plugin_settings.spf.reject_policy  # 0 to 4 (the schema)
        self.policy = policy
        self.refused = REFUSED[policy]
        # Recent verdicts per (client, sender, HELO): repeat senders (lists, bulk, the
        # same correspondent) skip pyspf and its thread. Short-lived, as DNS TTLs are.
        self._recent: Recent[tuple[str, str, str]] = Recent()

    # -- the check (worker thread) ------------------------------------------------------

    def _check(self, ip: str, sender: str, helo: str) -> tuple[str, str, str]:
        """(result, explanation, Received-SPF comment) from pyspf."""
        _local.resolver = self.ctx.resolver
        try:
            q = spf.query(i=ip, s=sender, h=helo, receiver=self.ctx.hostname,
                          querytime=QUERY_TIME)
            result, _code, explanation = q.check()
            try:
                why = q.get_header_comment(result)
            except Exception:  # pyspf lacks details for some results
                why = explanation
            return result, explanation, f"{self.ctx.hostname}: {why}"
        except spf.TempError as e:
            return "temperror", str(e), f"{self.ctx.hostname}: {e}"
        except spf.PermError as e:
            return "permerror", str(e), f"{self.ctx.hostname}: {e}"
        finally:
            _local.resolver = None

    async def _cached_check(self, ip: str, sender: str, helo: str) -> tuple[str, str, str]:
        key = (ip, sender.lower(), helo)
        cached = self._recent.get(key)
        if cached is not MISSING:
            return cast(tuple[str, str, str], cached)
        verdict = await self.ctx.resolver.in_thread(self._check, ip, sender, helo)
        if verdict[0] != "temperror":  # a DNS hiccup is asked again next time
            self._recent.put(key, verdict)
        return verdict

    # -- hooks --------------------------------------------------------------------------

    async def hook_mail(self, conn: Connection, txn: Transaction, sender: str) -> Result | None:
        if conn.trusted or txn.whitelisted:
            return None
        helo = conn.helo.strip().rstrip(".").lower()
        if sender:
            domain, scope = split_address(sender)[1], "mailfrom"
        else:
            domain, scope = helo, "helo"  # pyspf checks postmaster@helo
        checked = is_domain(domain) and not _ip_literal(domain)
        if not checked:
            result, explanation = "none", f"no domain to check ({scope})"
            why = f"{self.ctx.hostname}: {explanation}"
        else:
            result, explanation, why = await self._cached_check(conn.remote_ip, sender, helo)
        txn.spf = SpfCheck(result, explanation, domain)
        txn.notes[HEADER_NOTE] = self._received_spf(result, why, conn, sender, helo, scope)
        add_result(txn, f"spf={result} smtp.{scope}={domain or 'unknown'}")
        if result == "pass":
            conn.karma += 1
        elif result in ("fail", "softfail"):
            conn.karma -= 1
        self.log.info("%s for %s from %s (%s)", result, domain or "-", conn.remote_ip,
                      explanation)
        if result not in self.refused or not checked:
            return None  # nothing was checked (e.g. a bounce from an address literal)
        return await self._refuse(result, domain, conn.remote_ip)

    async def _refuse(self, result: str, domain: str, ip: str) -> Result | None:
        try:
            record = await find_record(self.ctx.resolver, domain)
        except DNSTempError as e:
            self.log.info("not refusing SPF %s of %s: DMARC lookup failed (%s)",
                          result, domain, e)
            return None
        if record is not None:
            self.log.info("not refusing SPF %s of %s: it has a DMARC policy (p=%s)",
                          result, domain, record.p)
            return None
        self.log.info("refused: SPF %s for %s from %s (reject_policy %d)",
                      result, domain, ip, self.policy)
        if result == "temperror":
            return denysoft(replies.SPF_TEMPERROR.format(domain=domain))
        if result == "permerror":
            return deny(replies.SPF_PERMERROR.format(domain=domain))
        return deny(replies.SPF_FAIL.format(domain=domain, ip=ip))

    async def hook_data_post(self, conn: Connection, txn: Transaction) -> None:
        value = txn.notes.get(HEADER_NOTE)
        if isinstance(value, str):
            txn.prepend_header("Received-SPF", value)

    @staticmethod
    def _received_spf(result: str, why: str, conn: Connection, sender: str, helo: str,
                      scope: str) -> str:
        """RFC 7208 §9.1: result (comment) key=value; ..."""
        pairs = [f"client-ip={conn.remote_ip};"]
        if sender:
            pairs.append(f"envelope-from={spf.quote_value(sender)};")
        if helo:
            pairs.append(f"helo={spf.quote_value(helo)};")
        pairs.append(f"identity={scope}")
        # pyspf's comment can quote the (sender-controlled) SPF record: keep it one line
        text = " ".join(why.replace("(", "[").replace(")", "]").split())[:300]
        return f"{result} ({text}) " + " ".join(pairs)
