"""The one place where every setting of appliance.toml is declared.

Each key has a name, a type, a default, what values are allowed and a one-line doc.
Loading, validation, the commented default file, the CLI and the docs all read this.
Defaults are SME Server's defaults (see shared/seeds), named in the toml's own style.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[Any], str | None]  # returns what is wrong, or None


@dataclass(frozen=True)
class Key:
    """One setting: `name = value` inside a section."""

    name: str
    kind: type  # str, int, bool or list (of str)
    default: Any
    doc: str
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    check: Check | None = None
    allowed: str = ""  # human wording of what `check` accepts

    def describe_allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is int:
            lo = "" if self.minimum is None else f"from {self.minimum}"
            hi = "" if self.maximum is None else f"to {self.maximum}"
            return " ".join(p for p in ("an integer", lo, hi) if p)
        if self.kind is list:
            return "a list of strings" + (f" ({self.allowed})" if self.allowed else "")
        return "a string" + (f" ({self.allowed})" if self.allowed else "")


@dataclass(frozen=True)
class Section:
    """A fixed table, e.g. [smtpd.submission]."""

    path: str
    doc: str
    keys: tuple[Key, ...]

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


@dataclass(frozen=True)
class Collection:
    """A table of named entries, e.g. [users.alice], each entry with the same keys."""

    path: str
    doc: str
    keys: tuple[Key, ...]
    name_pattern: re.Pattern[str]
    name_allowed: str
    example: dict[str, str] = field(default_factory=dict)

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


# ---- value checks ---------------------------------------------------------------------

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOSTNAME_RE = re.compile(rf"^{_LABEL}$")
DOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")
USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")


def _hostname(value: str) -> str | None:
    return None if HOSTNAME_RE.match(value) else "not a host name (one DNS label)"


def _domain(value: str) -> str | None:
    return None if DOMAIN_RE.match(value) else "not a domain name"


def _networks(values: list[str]) -> str | None:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            return f"{v!r} is not a network (CIDR like 192.0.2.0/24)"
    return None


def _password_hash(value: str) -> str | None:
    if value == "" or value.startswith("{BLF-CRYPT}$2"):
        return None
    return "not a password hash made by `appliance user passwd` ({BLF-CRYPT}...)"


TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _smtp_daemon(name: str, port: int, instances: int, tls_min: str, doc: str) -> Section:
    return Section(
        f"smtpd.{name}",
        doc,
        (
            Key("enabled", bool, True, "run this daemon"),
            Key("port", int, port, "TCP port it listens on", minimum=1, maximum=65535),
            Key(
                "instances", int, instances,
                "most simultaneous connections (SME Instances)", minimum=1, maximum=10000,
            ),
            Key(
                "instances_per_ip", int, 5,
                "most simultaneous connections from one address (SME InstancesPerIP)",
                minimum=1, maximum=10000,
            ),
            Key("tls_min_version", str, tls_min, "oldest TLS version accepted",
                choices=TLS_VERSIONS),
        ),
    )


# ---- the schema ----------------------------------------------------------------------

SECTIONS: tuple[Section, ...] = (
    Section(
        "system",
        "The server's name. Mail for the domain (and [domains.*]) is delivered here.",
        (
            Key("hostname", str, "mail", "host name, without the domain", check=_hostname,
                allowed="one DNS label"),
            Key("domain", str, "example.com", "primary mail domain", check=_domain,
                allowed="a domain name"),
        ),
    ),
    Section(
        "network",
        "Networks and trust.",
        (
            Key(
                "local_networks", list, ["127.0.0.0/8", "::1/128"],
                "clients from these networks may relay without AUTH. Never add the Docker "
                "bridge subnet: published ports make internet clients appear from it",
                check=_networks, allowed="CIDR networks",
            ),
        ),
    ),
    Section(
        "smtpd",
        "Settings shared by the three SMTP daemons (SME qpsmtpd).",
        (
            Key("greeting", str, "", "text after '220 host' in the banner; empty: ESMTP"),
            Key("timeout", int, 120, "seconds a client may stay silent (SME timeoutsmtpd)",
                minimum=5, maximum=3600),
            Key(
                "max_message_size", int, 15000000,
                "largest message accepted, in bytes (SME qmail MaxMessageSize)",
                minimum=1000, maximum=2_000_000_000,
            ),
            Key("handoff_timeout", int, 60,
                "seconds to wait for Postfix at each step of the hand-off", minimum=1,
                maximum=600),
            Key(
                "plugins", list, ["relay", "check_goodrcptto", "rcpt_ok"],
                "plugins run for every transaction, in this order",
                allowed="names under appliance/smtpd/plugins",
            ),
        ),
    ),
    _smtp_daemon("smtp", 25, 40, "TLSv1.1", "Port 25: mail from the internet (SME qpsmtpd)."),
    _smtp_daemon("smtps", 465, 10, "TLSv1.2",
                 "Port 465: submission over implicit TLS, AUTH required (SME sqpsmtpd)."),
    _smtp_daemon("submission", 587, 10, "TLSv1.2",
                 "Port 587: submission, STARTTLS then AUTH required (SME uqpsmtpd)."),
    Section(
        "queue",
        "The Postfix queue and delivery (SME qmail settings).",
        (
            Key("lifetime", int, 604800,
                "seconds a message may stay queued before it bounces (SME queuelifetime)",
                minimum=0, maximum=100 * 86400),
            Key("concurrency_remote", int, 20, "parallel remote deliveries (SME ConcurrencyRemote)",
                minimum=1, maximum=1000),
            Key("concurrency_local", int, 20, "parallel local deliveries (SME ConcurrencyLocal)",
                minimum=1, maximum=1000),
        ),
    ),
    Section(
        "imap",
        "Dovecot IMAP (143 STARTTLS, 993 TLS).",
        (
            Key("enabled", bool, True, "serve IMAP"),
            Key("connections_per_ip", int, 20,
                "simultaneous IMAP logins per user and address (SME ConcurrencyLimitPerIP)",
                minimum=1, maximum=1000),
        ),
    ),
    Section(
        "pop3",
        "Dovecot POP3 (110 STARTTLS, 995 TLS).",
        (Key("enabled", bool, True, "serve POP3"),),
    ),
)

COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        "users",
        "Mail users: [users.NAME]. Add them with `appliance user add NAME`.",
        (
            Key("password", str, "", "password hash; set with `appliance user passwd NAME`",
                check=_password_hash, allowed="{BLF-CRYPT} hash"),
            Key("full_name", str, "", "the user's full name"),
        ),
        USERNAME_RE,
        "lower-case letters, digits, '.', '_' or '-', starting with a letter, at most 32",
    ),
    Collection(
        "domains",
        "More mail domains delivered here besides system.domain: [domains.\"example.org\"].",
        (Key("description", str, "", "what this domain is for"),),
        DOMAIN_RE,
        "a domain name",
    ),
)


def section(path: str) -> Section | None:
    return next((s for s in SECTIONS if s.path == path), None)


def collection(path: str) -> Collection | None:
    return next((c for c in COLLECTIONS if c.path == path), None)


def find_key(dotted: str) -> tuple[Section | Collection, Key] | None:
    """Resolve `smtpd.smtp.instances` or `users.alice.full_name` to its declaration."""
    head, _, name = dotted.rpartition(".")
    if (s := section(head)) and (k := s.key(name)):
        return s, k
    coll_path, _, _entry = head.rpartition(".")
    if (c := collection(coll_path)) and (k := c.key(name)):
        return c, k
    return None
