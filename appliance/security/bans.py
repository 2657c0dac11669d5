"""Failed logins and banned addresses: the rules and their SQLite store.

Every service that checks a password reports each failure here (address, protocol, the
user tried) and asks, before it checks one, whether the address is banned:

- From the second failure of an address within `find_time`, the failed reply waits a
  delay that doubles each time (`failure_delay`, 2x, 4x... up to MAX_DELAY), so guessing
  is slow before any ban.
- `max_failures` failures within `find_time` ban the address for `ban_time`; a repeat
  offence (a ban again within OFFENCE_MEMORY of the last one ending) doubles it, up to
  `max_ban_time` (SME fail2ban: MaxRetry, FindTime, BanTime).
- More than `account_failures` failures for one account within an hour, from any mix of
  addresses, slow every login to that account by `account_delay`: a distributed guesser
  is slowed, the owner is never locked out.
- Addresses in `never_ban` (the local networks are always in it) are never banned nor
  slowed; their failures still count for the account.
- IPv6 clients are counted and banned by /64: one host owns at least that much.

The admin bans by hand (`appliance ban add`, permanent without a duration, as SME's
hosts_allow deny), addresses or networks, and lifts any ban (`appliance ban remove`).

The file is shared by processes running as different users (the SMTP daemons, the
Dovecot policy server, root's `appliance ban`). It keeps a rollback journal, which each
write removes again: nothing but the database itself lies on the volume between writes
(SQLite gives a journal that root makes to the database's owner anyway). Failures are
rare and small: the writes are cheap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from appliance.sqlite_transaction import transaction

T = TypeVar("T")

MAX_DELAY = 10.0  # seconds; below every client's reply timeout
ACCOUNT_WINDOW = 3600.0
OFFENCE_MEMORY = 7 * 86400.0  # a ban this long after the last one ended is a first one
BUSY_TIMEOUT_S = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    key TEXT NOT NULL,
    account TEXT NOT NULL,
    protocol TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_key ON failures (key, at);
CREATE INDEX IF NOT EXISTS failures_account ON failures (account, at);
CREATE INDEX IF NOT EXISTS failures_at ON failures (at);
CREATE TABLE IF NOT EXISTS bans (
    key TEXT PRIMARY KEY,
    network INTEGER NOT NULL,
    reason TEXT NOT NULL,
    protocol TEXT NOT NULL,
    account TEXT NOT NULL,
    failures INTEGER NOT NULL,
    first_failure REAL,
    last_failure REAL,
    since REAL NOT NULL,
    until REAL,
    offences INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bans_network ON bans (network);
"""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Rules:
    """The [security] settings as the services get them (never_ban already holds the
    local networks)."""

    enabled: bool
    max_failures: int
    find_time: int
    ban_time: int
    max_ban_time: int
    failure_delay: float
    account_failures: int
    account_delay: float
    never_ban: tuple[str, ...]


@dataclass(frozen=True)
class Ban:
    key: str  # an address, or a network (IPv6 /64, or one the admin gave)
    reason: str
    protocol: str  # of the last failure; "manual" for the admin's
    account: str  # the last user tried
    failures: int
    first_failure: float | None
    last_failure: float | None
    since: float
    until: float | None  # None: until removed
    offences: int

    def left(self, now: float) -> float | None:
        return None if self.until is None else max(0.0, self.until - now)


@dataclass(frozen=True)
class Verdict:
    """What one failure brought: the delay before the failed reply, and the ban it
    started (None: none, or the address was already banned)."""

    delay: float
    ban: Ban | None
    failures: int  # of this address within find_time, this one included


class BanError(ValueError):
    """A ban or unban the admin asked for that cannot be done."""


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address (IPv4-mapped IPv6 read as IPv4; a zone index dropped), or None."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def printable(text: str, limit: int) -> str:
    """TEXT cut to LIMIT, control characters as '?': what clients send reaches logs,
    the console and the admin's terminal."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def account_name(login: str) -> str:
    """The account a login names: users are the same in every local domain, so
    alice@any.domain counts as alice (as Dovecot and the SMTP daemons log them in)."""
    return printable(login.strip().lower().rpartition("@")[0] or login.strip().lower(), 128)


def client_key(address: str) -> str:
    """What failures and bans of ADDRESS are counted under: the address, or its /64."""
    ip = parse_address(address)
    if ip is None:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def admin_key(text: str) -> tuple[str, bool]:
    """(key, is a network) for what the admin typed: an address or a network."""
    ip = parse_address(text)
    if ip is not None:
        return str(ip), False
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BanError(f"{text!r} is neither an IP address nor a network") from None
    mapped = ipaddress.IPv6Network("::ffff:0:0/96")
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(mapped):
        # clients are seen as IPv4: ban the IPv4 network itself
        base = net.network_address.ipv4_mapped
        assert base is not None
        net = ipaddress.ip_network(f"{base}/{net.prefixlen - 96}")
    if net.num_addresses == 1:
        return str(net.network_address), False
    return str(net), True


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """Seconds from '90', '90s', '10m', '2h', '3d' or '1w'."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if not m or int(m.group(1)) == 0:
        raise BanError(f"{text!r} is not a duration (e.g. 30m, 2h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """'1h', '1d 2h', '15m', '40s': the largest two units."""
    s = int(round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size or (unit == "s" and not parts):
            parts.append(f"{s // size}{unit}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _networks(texts: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(t, strict=False) for t in texts]


class BanStore:
    """The store at PATH, opened on first use (one connection, used under a lock, so
    the daemons may call it from worker threads)."""

    def __init__(self, path: Path, rules: Rules,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.rules = rules
        self.clock = clock
        self._never = _networks(rules.never_ban)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- the services' side -----------------------------------------------------------

    def banned(self, address: str) -> Ban | None:
        """The ban in force on ADDRESS (by its own key, its /64, or a network), if any."""
        if parse_address(address) is None or self.exempt(address):
            return None
        now = self.clock()
        return self._run(lambda db: _in_force(db, address, now), write=False)

    def exempt(self, address: str) -> bool:
        ip = parse_address(address)
        return ip is not None and any(ip in net for net in self._never)

    def failed(self, address: str, protocol: str, account: str) -> Verdict:
        """Record one failed login; the delay to wait and the ban it started, if any."""
        r, now, key = self.rules, self.clock(), client_key(address)
        account = account_name(account)
        exempt = self.exempt(address) or parse_address(address) is None

        def record(db: sqlite3.Connection) -> Verdict:
            # an exempt address's failures count for the account only, never for the
            # address (should the exemption be lifted later)
            db.execute("INSERT INTO failures (key, account, protocol, at) VALUES (?,?,?,?)",
                       ("" if exempt else key, account, protocol, now))
            db.execute("DELETE FROM failures WHERE at <= ?",
                       (now - max(r.find_time, ACCOUNT_WINDOW),))
            if exempt:
                return Verdict(0.0, None, 0)
            first, count = db.execute(
                "SELECT min(at), count(*) FROM failures WHERE key = ? AND at > ?",
                (key, now - r.find_time)).fetchone()
            delay = failure_delay(r, count)
            if count < r.max_failures:
                return Verdict(delay, None, count)
            if _in_force(db, address, now) is not None:
                return Verdict(delay, None, count)  # already banned (by hand, say)
            old = db.execute("SELECT * FROM bans WHERE key = ?", (key,)).fetchone()
            repeat = (old is not None and old["until"] is not None
                      and now - old["until"] < OFFENCE_MEMORY)
            offences = old["offences"] + 1 if repeat else 1
            length = min(float(r.max_ban_time), r.ban_time * 2.0 ** min(offences - 1, 30))
            ban = Ban(key=key, reason=f"{count} failed logins in "
                      f"{format_duration(r.find_time)}", protocol=protocol, account=account,
                      failures=count, first_failure=first, last_failure=now, since=now,
                      until=now + length, offences=offences)
            _save(db, ban, network=key.endswith("/64"))
            # the next offence is counted from zero, not from these; they still count
            # for the account (a botnet's bans must not hide its guessing)
            db.execute("UPDATE failures SET key = '' WHERE key = ?", (key,))
            return Verdict(delay, ban, count)

        return self._run(record)

    def account_delay(self, account: str) -> float:
        """The delay every login to ACCOUNT waits while it is being guessed at."""
        account = account_name(account)
        if not account:
            return 0.0
        count = self._run(lambda db: db.execute(
            "SELECT count(*) FROM failures WHERE account = ? AND at > ?",
            (account, self.clock() - ACCOUNT_WINDOW)).fetchone()[0], write=False)
        return self.rules.account_delay if count > self.rules.account_failures else 0.0

    def next_delay(self, address: str) -> float:
        """The delay a failure of ADDRESS now would wait (its failures within find_time
        and this one): for a service that can only wait before it checks the password,
        as Dovecot's policy hook does."""
        if parse_address(address) is None or self.exempt(address):
            return 0.0
        key, since = client_key(address), self.clock() - self.rules.find_time
        count = self._run(lambda db: db.execute(
            "SELECT count(*) FROM failures WHERE key = ? AND at > ?",
            (key, since)).fetchone()[0], write=False)
        return failure_delay(self.rules, count + 1)

    # -- the admin's side -------------------------------------------------------------

    def add(self, target: str, seconds: int | None, reason: str = "") -> Ban:
        """Ban an address or network by hand, for SECONDS or (None) until removed."""
        key, network = admin_key(target)
        if len(reason) > 200 or not reason.isprintable():
            raise BanError("the reason must be one line of at most 200 printable characters")
        net = ipaddress.ip_network(key)
        if any(net.overlaps(n) for n in self._never):
            raise BanError(f"{key} is in security.never_ban or the local networks: "
                           "it cannot be banned")
        now = self.clock()
        ban = Ban(key=key, reason=reason or "banned by the administrator", protocol="manual",
                  account="", failures=0, first_failure=None, last_failure=None, since=now,
                  until=None if seconds is None else now + seconds, offences=1)
        self._run(lambda db: _save(db, ban, network))
        return ban

    def remove(self, target: str) -> list[str]:
        """Lift the bans on TARGET (its own key and, for an IPv6 address, its /64) and
        forget its failures; the keys lifted."""
        key, _ = admin_key(target)
        keys = sorted({key, client_key(target)} if parse_address(target) else {key})

        def lift(db: sqlite3.Connection) -> list[str]:
            marks = ",".join("?" * len(keys))
            now = self.clock()
            found = [r["key"] for r in db.execute(
                f"SELECT key FROM bans WHERE key IN ({marks}) AND "
                "(until IS NULL OR until > ?)", (*keys, now))]
            db.execute(f"DELETE FROM bans WHERE key IN ({marks})", keys)
            # forgotten for the address; the account's count keeps them
            db.execute(f"UPDATE failures SET key = '' WHERE key IN ({marks})", keys)
            return found

        return self._run(lift)

    def bans(self) -> list[Ban]:
        """The bans in force, newest first; expired ones past their memory are pruned."""
        now = self.clock()

        def listed(db: sqlite3.Connection) -> list[Ban]:
            db.execute("DELETE FROM bans WHERE until IS NOT NULL AND until < ?",
                       (now - OFFENCE_MEMORY,))
            return [_ban(r) for r in db.execute(
                "SELECT * FROM bans WHERE until IS NULL OR until > ? ORDER BY since DESC",
                (now,))]

        return self._run(listed)

    def accounts_under_attack(self) -> list[tuple[str, int]]:
        """(account, failures in the last hour) for those slowed by account_delay."""
        rows = self._run(lambda db: db.execute(
            "SELECT account, count(*) FROM failures WHERE at > ? AND account != '' "
            "GROUP BY account HAVING count(*) > ? ORDER BY count(*) DESC",
            (self.clock() - ACCOUNT_WINDOW, self.rules.account_failures)).fetchall(),
            write=False)
        return [(a, n) for a, n in rows]

    # -- the file -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.row_factory = sqlite3.Row
                db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                db.execute("PRAGMA journal_mode = DELETE")
                db.executescript(SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        with self._lock:
            return transaction(self._open(), fn, write)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def failure_delay(rules: Rules, count: int) -> float:
    """The delay before the failed reply to an address's COUNTth failure within
    find_time: none for the first, then failure_delay doubling up to MAX_DELAY."""
    return 0.0 if count < 2 else min(MAX_DELAY, rules.failure_delay * 2 ** min(count - 2, 16))


def _in_force(db: sqlite3.Connection, address: str, now: float) -> Ban | None:
    """The ban on ADDRESS in force at NOW: by its own key, its /64, or a network."""
    ip = parse_address(address)
    keys = {str(ip), client_key(address)}
    active = "(until IS NULL OR until > ?)"
    rows = db.execute(f"SELECT * FROM bans WHERE key IN ({','.join('?' * len(keys))}) "
                      f"AND {active}", (*keys, now)).fetchall()
    rows += [r for r in db.execute(f"SELECT * FROM bans WHERE network = 1 AND {active}",
                                   (now,)).fetchall()
             if ip in ipaddress.ip_network(r["key"])]
    return _ban(rows[0]) if rows else None


def _save(db: sqlite3.Connection, ban: Ban, network: bool) -> None:
    db.execute(
        "INSERT OR REPLACE INTO bans (key, network, reason, protocol, account, failures, "
        "first_failure, last_failure, since, until, offences) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (ban.key, int(network), ban.reason, ban.protocol, ban.account, ban.failures,
         ban.first_failure, ban.last_failure, ban.since, ban.until, ban.offences))


def _ban(row: sqlite3.Row) -> Ban:
    return Ban(key=row["key"], reason=row["reason"], protocol=row["protocol"],
               account=row["account"], failures=row["failures"],
               first_failure=row["first_failure"], last_failure=row["last_failure"],
               since=row["since"], until=row["until"], offences=row["offences"])


def rules_from_config(data: dict) -> Rules:
    """The Rules of a validated appliance.toml's DATA: [security], with the local
    networks never banned."""
    s = data["security"]
    return Rules(enabled=s["enabled"], max_failures=s["max_failures"],
                 find_time=s["find_time"], ban_time=s["ban_time"],
                 max_ban_time=max(s["max_ban_time"], s["ban_time"]),
                 failure_delay=float(s["failure_delay"]),
                 account_failures=s["account_failures"],
                 account_delay=float(s["account_delay"]),
                 never_ban=never_ban(data["network"]["local_networks"], s["never_ban"]))


def rules_to_dict(rules: Rules) -> dict:
    """RULES as the JSON the services read (lists, not tuples)."""
    return {**dataclasses.asdict(rules), "never_ban": list(rules.never_ban)}


def rules_from_dict(data: dict) -> Rules:
    """Rules from that JSON; TypeError or ValueError when it does not fit."""
    rules = Rules(**{**data, "never_ban": tuple(data["never_ban"])})
    _networks(rules.never_ban)
    return rules


def never_ban(local_networks: Sequence[str], extra: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*local_networks, *extra]))
