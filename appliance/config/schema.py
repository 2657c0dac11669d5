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

from appliance.config import app_passwords

Check = Callable[[Any], str | None]  # returns what is wrong, or None


@dataclass(frozen=True)
class Key:
    """One setting: `name = value` inside a section."""

    name: str
    kind: type  # str, int, float, bool or list (of str)
    default: Any
    doc: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Check | None = None
    allowed: str = ""  # human wording of what `check` accepts
    # str keys refuse control characters (CR/LF would smuggle lines into SMTP replies
    # and generated files); a multi-line text may hold line feeds, nothing else
    multiline: bool = False
    # a password or its hash: `config show` and every error about it omit the value
    # (errors reach docker logs, boot-state.json and the healthcheck)
    secret: bool = False

    def describe_allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind in (int, float):
            if self.allowed:
                return self.allowed
            lo = "" if self.minimum is None else f"from {self.minimum}"
            hi = "" if self.maximum is None else f"to {self.maximum}"
            what = "an integer" if self.kind is int else "a number"
            return " ".join(p for p in (what, lo, hi) if p)
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
PASSWORD_STRENGTHS = ("none", "normal", "intermediate", "strong")  # SME passwordstrength
# Names a new user, group or pseudonym (its local part) may not take, because mail to or
# from them means something else here: the role addresses (RFC 2142 and the like, and
# the DMARC report address print-dns publishes), Postfix's bounce senders, and the
# accounts Postfix, Dovecot and our daemons send or receive local mail as. Mailboxes are
# virtual: Debian's other system users and groups (news, list, backup, ...) are free.
# A file that already has one still loads, with a warning (load.reserved_name_warnings).
RESERVED_NAMES = frozenset({
    "postmaster", "abuse", "hostmaster", "webmaster", "mailer-daemon", "everyone",
    "dmarc-feedback", "admin", "administrator", "double-bounce",
    "root", "daemon", "mail", "nobody", "postfix", "dovecot", "dovenull", "vmail",
    "qpsmtpd", "clamav", "debian-spamd", "www-data", "unbound", "fetchmail",
    "_mta-sts",  # postfix-mta-sts-resolver's (no user name can start with "_" anyway)
})
ACCOUNT_COLLECTIONS = ("users", "groups", "pseudonyms")  # whose names RESERVED_NAMES binds
SA_RULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# SME's spam sensitivity table: the tagging level of each setting; only custom rejects.
SPAM_SENSITIVITY: dict[str, int | None] = {
    "veryhigh": 2, "high": 3, "medium": 5, "low": 7, "verylow": 9, "custom": None}
# Attachment names blocked by [smtpd.pattern_filter]: Windows executable and script
# types (Outlook's level-1 list, which SME's executable types follow); archives are
# allowed.
EXECUTABLE_PATTERNS = [f"*.{ext}" for ext in (
    "ade adp app application appref-ms asp aspx bas bat cer chm cmd cnt com cpl crt csh "
    "der diagcab exe fxp gadget grp hlp hpj hta htc inf ins isp its jar jnlp js jse ksh "
    "lnk mad maf mag mam maq mar mas mat mau mav maw mcf mda mdb mde mdt mdw mdz msc msh "
    "msh1 msh2 mshxml msh1xml msh2xml msi msp mst msu ops osd pcd pif pl plg prf prg "
    "printerexport ps1 ps1xml ps2 ps2xml psc1 psc2 psd1 psdm1 pst py pyc pyo pyw pyz pyzw "
    "reg scf scr sct settingcontent-ms shb shs theme tmp url vb vbe vbp vbs vhd vhdx "
    "vsmacros vsw webpnp website ws wsb wsc wsf wsh xbap xll xnk").split()]
# SME's choices for how often fetchmail runs, in seconds (None: not at all)
FETCH_FREQUENCIES: dict[str, int | None] = {
    "never": None, "every5min": 300, "every15min": 900, "every30min": 1800,
    "everyhour": 3600, "every2hrs": 7200}


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


def _ip_addresses(values: list[str]) -> str | None:
    for v in values:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            return f"{v!r} is not an IP address"
    return None


MTU_MIN, MTU_MAX = 576, 9000  # IPv4's minimum datagram, jumbo frames


def _mtu(value: int) -> str | None:
    return None if value == 0 or MTU_MIN <= value <= MTU_MAX else "not a usable MTU"


def _interface(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", value) else "not an interface name"


def parse_server(value: str, default_port: int = 25) -> tuple[str, int]:
    """'host', '[ip]', 'host:port' or '[ip]:port' -> (host, port). ValueError if not."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r} is not host, [ip] or host:port")
        port = rest[1:]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not host or (port and not port.isdigit()) or not 0 < int(port or default_port) < 65536:
        raise ValueError(f"{value!r} is not host, [ip] or host:port")
    return host, int(port or default_port)


def _mail_server(value: str) -> str | None:
    if not value:
        return None
    try:
        host, _ = parse_server(value)
    except ValueError as e:
        return str(e)
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        return None if DOMAIN_RE.match(host) else f"{host!r} is not a host name or address"


def _fqdn_or_empty(value: str) -> str | None:
    return None if not value or DOMAIN_RE.match(value) else "not a fully qualified host name"


def _account_or_keyword(*keywords: str) -> Check:
    def check(value: str) -> str | None:
        if value in keywords or USERNAME_RE.match(value):
            return None
        return f"not {', '.join(keywords)} or an account name"
    return check


def _one_line(value: str) -> str | None:
    return "must be one line" if "\n" in value or "\r" in value else None


ACME_LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


def _https_url(value: str) -> str | None:
    if not re.fullmatch(r"https://[^\s/?#]+(?:/\S*)?", value):
        return "must be an https:// URL"
    return None


def _email_or_empty(value: str) -> str | None:
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return "must be an e-mail address (or empty)"
    return None


def _absolute_path_or_empty(value: str) -> str | None:
    if value and (not value.startswith("/") or "\n" in value):
        return "must be an absolute path (or empty)"
    return None


def _map_token(value: str) -> str | None:
    # It becomes one field of a Postfix lookup table line.
    return "no spaces, colons or line breaks" if re.search(r"[\s:]", value) else None


def _bounce_from(value: str) -> str | None:
    local, at, domain = value.rpartition("@")
    if not value or any(c.isspace() or c in '<>()"' for c in value) or (
            at and (not local or not DOMAIN_RE.match(domain))):
        return "not a local part or an e-mail address"
    return None


def _bounce_text(value: str) -> str | None:
    # The text sits in a Postfix template between <<EOF and EOF.
    if any(line.strip() == "EOF" for line in value.splitlines()):
        return "a line that is only EOF would end Postfix's template early"
    return None


def _header_name_or_empty(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9-]*", value) else "not a header name"


def _addresses(values: list[str]) -> str | None:
    for v in values:
        local, at, domain = v.rpartition("@")
        if not at or not local or not DOMAIN_RE.match(domain) or any(c.isspace() for c in v):
            return f"{v!r} is not an e-mail address"
    return None


def _user_names(values: list[str]) -> str | None:
    for v in values:
        if not USERNAME_RE.match(v):
            return f"{v!r} is not an account name"
    return None


def _password_hash(value: str) -> str | None:
    if value == "" or value.startswith("{BLF-CRYPT}$2"):
        return None
    return "not a password hash made by `appliance user passwd` ({BLF-CRYPT}...)"


def _ciphers(value: str) -> str | None:
    if not value:
        return None
    import ssl

    try:
        ssl.create_default_context().set_ciphers(value)
    except ssl.SSLError:
        return f"OpenSSL knows no cipher in {value!r}"
    return None


def _zones(values: list[str]) -> str | None:
    for v in values:
        zone = v.split(":", 1)[0]
        if not DOMAIN_RE.match(zone):
            return f"{v!r} does not start with a DNS zone"
    return None


def _zone_names(values: list[str]) -> str | None:
    for v in values:
        labels = v.rstrip(".").split(".")
        if not v or not all(re.fullmatch(_LABEL, label) for label in labels):
            return f"{v!r} is not a DNS zone"
    return None


# A DS or DNSKEY record as in a zone file: owner, optional TTL and class, then its data
_TRUST_ANCHOR_RE = re.compile(
    r"(?P<owner>\S+)\s+(?:\d+\s+)?(?:IN\s+)?(?:DS\s+\d+\s+\d+\s+\d+\s+[0-9A-Fa-f ]+"
    r"|DNSKEY\s+\d+\s+\d+\s+\d+\s+[A-Za-z0-9+/= ]+)", re.IGNORECASE)


def _trust_anchors(values: list[str]) -> str | None:
    for v in values:
        m = _TRUST_ANCHOR_RE.fullmatch(v.strip())
        if not m or _zone_names([m["owner"]]):
            return f"{v!r} is not a DS or DNSKEY record (zone [TTL] [IN] DS|DNSKEY ...)"
    return None


def _ip_or_networks(values: list[str]) -> str | None:
    return _networks(values)


EXTENSION_SEPARATORS = "+-"  # RFC 5233's + as most providers, and SME's -


def _extension_separators(value: str) -> str | None:
    if any(c not in "+-=" for c in value) or len(set(value)) != len(value):
        return "not some of the characters + - = (each once), or empty"
    return None


def _addresses_or_patterns(values: list[str]) -> str | None:
    for v in values:
        if not v.strip() or any(c.isspace() for c in v.strip()):
            return f"{v!r} is empty or has spaces"
    return None


def _sender_patterns(values: list[str]) -> str | None:
    for v in values:
        if not v.strip() or any(c.isspace() for c in v) or ("@" not in v and v != "*"):
            return f"{v!r} is not an address, @domain, pattern or *"
    return None


def _rule_scores(values: list[str]) -> str | None:
    for v in values:
        parts = v.split()
        try:
            ok = len(parts) == 2 and bool(SA_RULE_RE.match(parts[0])) and float(parts[1]) == \
                float(parts[1])
        except ValueError:
            ok = False
        if not ok:
            return f"{v!r} is not 'RULE_NAME score' (e.g. 'SARE_ADULT2 4.0')"
    return None


def _clamav_size(value: str) -> str | None:
    # clamd's own spelling: bytes, or a number with K or M
    return None if re.fullmatch(r"[1-9][0-9]{0,9}[KM]?", value) else \
        "not a size such as 15M, 800K or 15000000"


def _from_to_pairs(values: list[str]) -> str | None:
    for v in values:
        if len(v.split()) != 2:
            return f"{v!r} is not 'sender recipient'"
    return None


TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# Mozilla's "intermediate" list: forward secrecy and AEAD only, no CBC, SHA-1 MACs or RSA
# key exchange.
MODERN_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                  "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
                  "DHE-RSA-CHACHA20-POLY1305")


def _access(protocol: str, port: int) -> Key:
    return Key("access", str, "private",
               f"private: logins without TLS on {port} only from network.local_networks; "
               f"public: from anywhere, passwords in clear (SME {protocol.lower()} access). "
               "TLS logins work from anywhere either way", choices=("private", "public"))


def _tls_min(ports: str, name: str = "tls_min_version") -> Key:
    return Key(name, str, "TLSv1.2", f"oldest TLS version accepted on {ports}",
               choices=("TLSv1.2", "TLSv1.3"))


# Our SMTP daemons, one [smtpd.NAME] section and one supervisord program each (SME
# qpsmtpd, sqpsmtpd, uqpsmtpd); the two that take submissions demand AUTH.
SMTP_DAEMONS = ("smtp", "smtps", "submission")
SUBMISSION_DAEMONS = ("smtps", "submission")


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
                "most simultaneous connections from one address, an IPv6 client by its /64 "
                "(SME InstancesPerIP)",
                minimum=1, maximum=10000,
            ),
            Key("tls_min_version", str, tls_min, "oldest TLS version accepted",
                choices=TLS_VERSIONS),
            Key("tls_ciphers", str, "",
                "OpenSSL cipher list for TLS 1.2 and older; empty: tls.ciphers",
                check=_ciphers, allowed="an OpenSSL cipher string"),
            Key("tls_before_auth", bool, True,
                "offer AUTH only after STARTTLS or on implicit TLS (SME TlsBeforeAuth)"),
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
            Key("admin", str, "", "the user who gets mail for postmaster@, abuse@ and "
                "dmarc-feedback@ (SME admin); `appliance user add` sets the first user "
                "added. That user cannot be deleted until another is set here",
                check=lambda v: None if not v or USERNAME_RE.match(v) else "not a user name",
                allowed="a user name"),
            Key("password_strength", str, "strong", "what a user's new password must be "
                "(SME passwordstrength Users): every level at least password_min_length "
                "characters; none: nothing more; normal: upper and lower case letters; "
                "intermediate: those and not easy to guess (zxcvbn score 3 of 4, in place "
                "of SME's cracklib); strong: letters of both cases, digits, other "
                "characters, and not easy to guess", choices=PASSWORD_STRENGTHS),
            Key("password_min_length", int, 12, "fewest characters in a new password "
                "(SME passwordstrength length)", minimum=1, maximum=128),
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
            Key(
                "trusted_proxies", list, [],
                "load balancers whose connections start with a PROXY protocol header "
                "(v2 or v1) carrying the real client address, which bans, karma, relay "
                "and every log then use: required from them on SMTP 25/465/587, and on "
                "the proxied IMAP/POP3 ports 10143/10993/10110/10995 and webmail "
                "8080/8443; a PROXY header from any other address closes the connection. "
                "Empty: no proxies",
                check=_networks, allowed="CIDR networks",
            ),
            Key("public_addresses", list, [], "the IPv4/IPv6 addresses the internet reaches "
                "this server at, when known (the container cannot see them behind NAT): "
                "print-dns publishes them as the host's A/AAAA records, and `dns check` "
                "compares those and their PTR records. Empty: print-dns shows a "
                "placeholder", check=_ip_addresses, allowed="IP addresses"),
            Key("dns_forwarders", list, [], "resolvers that Unbound, the appliance's own DNS "
                "resolver, forwards every query to; empty: full recursion from the root "
                "servers (SME's dnscache default). Large public resolvers may be refused by "
                "DNSBL/URIBL lists", check=_ip_addresses, allowed="IP addresses"),
            Key("dnssec", bool, True, "Unbound validates DNSSEC; turn off only when the "
                "forwarders strip DNSSEC records"),
            Key("dns_private_zones", list, [], "zones the forwarders serve although they "
                "are private or special-use (e.g. lan, test, 168.192.in-addr.arpa): Unbound "
                "asks for them instead of answering 'no such name' itself, and does not "
                "expect DNSSEC signatures there", check=_zone_names, allowed="DNS zones"),
            Key("dns_trust_anchors", list, [], "DNSSEC trust anchors of internal signed "
                "zones, as DS or DNSKEY records (e.g. 'corp.example. IN DS 12345 13 2 "
                "ABCD...'): Unbound validates those zones from them, even below a "
                "private zone. Only with dnssec on", check=_trust_anchors,
                allowed="DS or DNSKEY records"),
            Key("interface", str, "eth0", "the network interface the MTU applies to",
                check=_interface, allowed="an interface name"),
            Key("mtu", int, 0, "MTU of that interface (e.g. 1492 behind PPPoE); the SMTP "
                "listeners clamp their TCP MSS to MTU - 40 so path-MTU black holes cannot "
                "stall mail. 0: the MTU the container was given, no clamping. Setting "
                "the interface needs NET_ADMIN (compose.yaml grants it)", check=_mtu,
                minimum=0, maximum=MTU_MAX,
                allowed=f"an integer: 0, or {MTU_MIN} to {MTU_MAX}"),
        ),
    ),
    Section(
        "limits",
        "What one logged-in user may send, so a stolen password cannot send a flood. "
        "users.NAME.messages_per_hour and recipients_per_message override them.",
        (
            Key("user_messages_per_hour", int, 500, "messages a user may send in any "
                "hour (counted on 25, 465 and 587 together); past it MAIL gets 451 4.7.1 "
                "until the hour has room again; 0: no limit", minimum=0,
                maximum=1_000_000),
            Key("user_recipients_per_message", int, 100, "recipients one message of a "
                "logged-in user may have (SME/qmail maxrecipients); more get 452 4.5.3, "
                "which clients answer by sending the rest in another message. "
                "smtpd.max_recipients is the limit for everyone else", minimum=1,
                maximum=10000),
        ),
    ),
    Section(
        "security",
        "Failed logins on every port (SMTP AUTH, IMAP, POP3, ManageSieve, webmail) slow "
        "the client down and then ban its address on every port (SME fail2ban). "
        "`appliance ban list`, `ban add` and `ban remove` show and change the bans.",
        (
            Key("enabled", bool, True, "count failed logins and ban (SME fail2ban status)"),
            Key("max_failures", int, 10, "failed logins from one address within find_time "
                "that ban it (SME fail2ban MaxRetry)", minimum=2, maximum=1000),
            Key("find_time", int, 600, "seconds over which failures are counted "
                "(SME fail2ban FindTime)", minimum=60, maximum=7 * 86400),
            Key("ban_time", int, 3600, "seconds of a first ban; each repeat within a week "
                "doubles it (SME fail2ban BanTime)", minimum=60, maximum=365 * 86400),
            Key("max_ban_time", int, 86400, "longest automatic ban, in seconds",
                minimum=60, maximum=365 * 86400),
            Key("failure_delay", float, 1.0, "seconds the second failed login from an "
                "address waits for its reply; each further one waits twice as long, up to "
                "10 s", minimum=0, maximum=10),
            Key("account_failures", int, 30, "failed logins to one account within an hour, "
                "from any addresses, after which every login to it is slowed (never "
                "locked)", minimum=1, maximum=100000),
            Key("account_delay", float, 5.0, "seconds each login to such an account waits",
                minimum=0, maximum=30),
            Key("never_ban", list, [], "networks never slowed nor banned, besides "
                "network.local_networks (SME fail2ban IgnoreIP)", check=_networks,
                allowed="CIDR networks"),
        ),
    ),
    Section(
        "smtpd",
        "Settings shared by the three SMTP daemons (SME qpsmtpd).",
        (
            Key("greeting", str, "", "text after '220 host' in the banner; empty: ESMTP"),
            Key("timeout", int, 120, "seconds a client may take for one command, or stay "
                "silent in DATA (SME timeoutsmtpd)", minimum=5, maximum=3600),
            Key("min_data_rate", int, 500, "bytes per second a message upload must average "
                "once it has lasted longer than the timeout (as Postfix's "
                "smtpd_min_data_rate); 0: no minimum", minimum=0, maximum=10_000_000),
            Key(
                "max_message_size", int, 15000000,
                "largest message accepted, in bytes (SME qmail MaxMessageSize)",
                minimum=1000, maximum=2_000_000_000,
            ),
            Key("handoff_timeout", int, 60,
                "seconds to wait for Postfix at each step of the hand-off", minimum=1,
                maximum=600),
            Key("max_recipients", int, 100,
                "recipients accepted per message from clients not logged in (our users: "
                "limits.user_recipients_per_message); more get 452 (RFC 5321 minimum 100)",
                minimum=1, maximum=10000),
            Key("dns_timeout", int, 5,
                "seconds a plugin waits for DNS; a timeout defers (4xx), never rejects",
                minimum=1, maximum=60),
            Key("tarpit_count", int, 5, "refused recipients in one session after which "
                "each further RCPT waits tarpit_delay: dictionary attacks crawl "
                "(H-Sphere qmail tarpitcount); 0: never. Not for logged-in users",
                minimum=0, maximum=10000),
            Key("tarpit_delay", int, 5, "seconds each of those RCPTs waits (H-Sphere "
                "tarpitdelay)", minimum=1, maximum=60),
            Key("log_level", int, 6, "0-7 as syslog; 7 logs every plugin decision "
                "(SME LogLevel)", minimum=0, maximum=7),
        ),
    ),
    # Port 25's TLS is opportunistic: a sender that cannot do TLS 1.2 sends in clear.
    _smtp_daemon("smtp", 25, 40, "TLSv1.2", "Port 25: mail from the internet (SME qpsmtpd)."),
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
            Key("double_bounce_to", str, "postmaster",
                "who gets bounces that could not be returned: postmaster (system.admin), "
                "devnull (discard them) or a user (SME DoubleBounceTo)",
                check=_account_or_keyword("postmaster", "devnull"),
                allowed="postmaster, devnull or an account name"),
            Key("bounce_from", str, "MAILER-DAEMON", "From of the bounces this server sends: "
                "a name (@domain is added) or an address (H-Sphere bouncefrom)",
                check=_bounce_from, allowed="a local part or an e-mail address"),
            Key("bounce_subject", str, "Undelivered Mail Returned to Sender",
                "Subject of those bounces (bouncesubject)", check=_one_line,
                allowed="one line"),
            Key("bounce_text", str, "", "text a bounce starts with, before the list of "
                "failed addresses and the returned message (bouncemessage); empty: "
                "Postfix's standard explanation", check=_bounce_text,
                allowed="text without a line that is only EOF", multiline=True),
        ),
    ),
    Section(
        "delivery",
        "Where mail goes (SME e-mail delivery settings).",
        (
            Key("smarthost", str, "", "send all outgoing mail through this server, host or "
                "host:port (SME SMTPSmartHost); empty: deliver directly by MX",
                check=_mail_server, allowed="host, [ip] or host:port"),
            Key("smarthost_user", str, "", "user name for AUTH at the smarthost "
                "(SME SMTPAUTHPROXY Userid); empty: no AUTH", check=_map_token,
                allowed="no spaces, colons or line breaks"),
            Key("smarthost_password", str, "", "password for AUTH at the smarthost "
                "(SME SMTPAUTHPROXY Passwd); this file is readable by root only",
                check=_one_line, allowed="one line", secret=True),
            Key("smarthost_tls", str, "may", "TLS to the smarthost: may (when offered), "
                "encrypt (refuse to send without it) or none", choices=("may", "encrypt",
                                                                         "none")),
            Key("delegate_mail_server", str, "", "deliver mail of every local domain to this "
                "internal or external server instead of the mailboxes here, unless the domain "
                "has its own mail_server (SME DelegateMailServer)",
                check=_mail_server, allowed="host, [ip] or host:port"),
            Key("helo_host", str, "", "the name given in HELO to other servers; empty: "
                "hostname.domain (SME HeloHost)", check=_fqdn_or_empty,
                allowed="a fully qualified host name"),
            Key("unknown_user", str, "returntosender", "mail for an address that does not "
                "exist here: returntosender (refused at RCPT) or an account that gets it "
                "(SME EmailUnknownUser)", check=_account_or_keyword("returntosender"),
                allowed="returntosender or an account name"),
            Key("duplicate_window_hours", int, 24, "a copy of a message (the same "
                "Message-ID, Date, From and Subject) that a mailbox already received within "
                "this many hours is not stored again: a sender's retry after a lost 250, a "
                "redelivery after a crash, the same mail through a list and directly; 0 "
                "keeps every copy", minimum=0, maximum=168),
            Key("everyone_visible", str, "internal", "who may write to everyone@ (all "
                "users with everyone_email): internal, only network.local_networks and "
                "authenticated users (the internet gets 550 5.7.1), as on SME; public: "
                "anyone", choices=("internal", "public")),
        ),
    ),
    Section(
        "fetchmail",
        "E-mail retrieval from a secondary mail server, for sites that are not their "
        "domain's MX (SME fetchmail). Office hours are 08:00-18:00 Monday to Friday, "
        "in the container's time zone (TZ).",
        (
            Key("enabled", bool, False, "retrieve mail at all (SME fetchmail status); "
                "with method standard nothing is retrieved either"),
            Key("method", str, "standard", "standard: mail arrives by SMTP, nothing to "
                "retrieve; etrn: ask the secondary server to send its queue (ETRN); "
                "multidrop: collect one POP3 mailbox holding the mail of the whole domain",
                choices=("standard", "etrn", "multidrop")),
            Key("secondary_mail_server", str, "", "the secondary server, host or host:port "
                "(SME SecondaryMailServer)", check=_mail_server,
                allowed="host, [ip] or host:port"),
            Key("freq_office", str, "every15min", "how often during office hours "
                "(SME FreqOffice)", choices=tuple(FETCH_FREQUENCIES)),
            Key("freq_outside", str, "everyhour", "how often outside office hours on weekdays "
                "(SME FreqOutside)", choices=tuple(FETCH_FREQUENCIES)),
            Key("freq_weekend", str, "everyhour", "how often on Saturday and Sunday "
                "(SME FreqWeekend)", choices=tuple(FETCH_FREQUENCIES)),
            Key("account", str, "", "multidrop: the POP3 user (SME SecondaryMailAccount)"),
            Key("password", str, "", "multidrop: the POP3 password (SME "
                "SecondaryMailPassword); this file is readable by root only", secret=True),
            Key("sort_header", str, "", "multidrop: the header that holds each message's "
                "recipient, e.g. Delivered-To or X-Original-To (SME SecondaryMailEnvelope); "
                "empty: fetchmail's default (its Received lines, else To and Cc)",
                check=_header_name_or_empty, allowed="a header name"),
            Key("tls", str, "starttls", "multidrop: starttls (required, certificate checked "
                "against the system CAs, fetchmail's default), implicit (POP3S, port 995 "
                "unless given) or none (plain text, password readable on the wire)",
                choices=("starttls", "implicit", "none")),
        ),
    ),
    Section(
        "spamassassin",
        "Spam filtering by SpamAssassin's spamd (SME spamassassin). Mail from the "
        "internet is scored after DATA; tagged mail gets X-Spam-* headers and can be "
        "sorted into each user's junkmail folder.",
        (
            Key("enabled", bool, True, "score mail with SpamAssassin (SME status)"),
            Key("sensitivity", str, "medium", "veryhigh, high, medium, low and verylow tag "
                "mail at 2, 3, 5, 7 and 9 points and never reject; custom uses tag_level and "
                "reject_level (SME Sensitivity)", choices=tuple(SPAM_SENSITIVITY)),
            Key("tag_level", float, 4.0, "with sensitivity custom: score from which mail is "
                "tagged as spam (SME TagLevel)", minimum=-100, maximum=1000),
            Key("reject_level", float, 12.0, "with sensitivity custom: score from which mail "
                "is refused with 550 at the end of DATA; 0: never (SME RejectLevel)",
                minimum=0, maximum=1000),
            Key("sort_spam", bool, False, "deliver tagged mail into the recipient's "
                "junkmail folder instead of the inbox; users.NAME.sort_spam overrides it "
                "(SME SortSpam)"),
            Key("subject_tag", bool, False, "put a tag in front of the Subject of tagged "
                "mail (SME SubjectTag)"),
            Key("subject", str, "[SPAM]", "that tag (SME Subject)", check=_one_line,
                allowed="one line"),
            Key("max_message_size", int, 500000, "larger messages are not scanned and get "
                "an X-Spam-Status header saying so (SME MaxMessageSize)", minimum=1000,
                maximum=2_000_000_000),
            Key("scan_local", bool, False, "also scan mail from local networks and "
                "authenticated users (SME forcespamcheck)"),
            Key("use_bayes", bool, False, "Bayesian filtering: learn from the auto-learn "
                "thresholds and the LearnAsSpam/LearnAsHam folders (SME UseBayes)"),
            Key("bayes_auto_learn_threshold_spam", float, 6.0, "score above which mail is "
                "learnt as spam (SME BayesAutoLearnThresholdSpam)", minimum=0, maximum=1000),
            Key("bayes_auto_learn_threshold_nonspam", float, 0.1, "score below which mail "
                "is learnt as ham (SME BayesAutoLearnThresholdNonspam)", minimum=-1000,
                maximum=1000),
            Key("message_retention_days", int, 0, "junkmail older than this many days is "
                "deleted every night; 0: kept (SME MessageRetentionTime)", minimum=0,
                maximum=36500),
            Key("scores", list, [], "custom rule scores, 'RULE_NAME score' (SME "
                "20localscores)", check=_rule_scores, allowed="'RULE_NAME score' strings"),
            Key("whitelist", list, [], "senders never treated as spam: user@domain, "
                "*@domain, *@*.tld (SME wbl.global White); the pipeline skips its spam "
                "checks for them", check=_addresses_or_patterns, allowed="address patterns"),
            Key("blacklist", list, [], "senders always refused: user@domain, *@domain, "
                "*@*.tld (SME wbl.global Black); refused at RCPT, and SpamAssassin scores "
                "their From: 100", check=_addresses_or_patterns, allowed="address patterns"),
            Key("pyzor_timeout", int, 0, "seconds SpamAssassin waits for Pyzor; 0: its "
                "default (SME PyzorTimeout)", minimum=0, maximum=600),
            Key("max_children", int, 5, "spamd processes scanning at once (memory: about "
                "100 MB each)", minimum=1, maximum=100),
            Key("timeout", int, 60, "seconds to wait for spamd's verdict", minimum=5,
                maximum=600),
            Key("on_error", str, "defer", "when spamd cannot be reached or fails: defer "
                "(451, the sender retries) or accept (unscanned, with a header saying so)",
                choices=("defer", "accept")),
        ),
    ),
    Section(
        "clamav",
        "Virus scanning by ClamAV's clamd (SME clamav, qpsmtpd VirusScan). A virus is "
        "refused with 550; mail is never accepted unscanned unless on_error says so.",
        (
            Key("enabled", bool, True, "scan every message (SME qpsmtpd VirusScan)"),
            Key("max_scanner_size", int, 25000000, "larger messages are not scanned and get "
                "an X-Virus-Checked header saying so (SME qpsmtpd MaxScannerSize)",
                minimum=100000, maximum=2_000_000_000),
            Key("max_file_size", str, "15M", "largest file inside a message that is "
                "scanned (SME MaxFileSize)", check=_clamav_size, allowed="e.g. 15M"),
            Key("archive_max_compression_ratio", int, 300, "an archive member that expands "
                "more than this many times is refused as a zip bomb; 0: no limit (SME "
                "ArchiveMaxCompressionRatio)", minimum=0, maximum=100000),
            Key("max_files", int, 1500, "files scanned inside one archive (SME MaxFiles)",
                minimum=1, maximum=1000000),
            Key("max_recursion", int, 8, "archives inside archives (SME MaxRecursion)",
                minimum=1, maximum=64),
            Key("heuristic_scan_precedence", bool, False, "stop at the first heuristic "
                "hit such as a phishing link (SME HeuristicScanPrecedence)"),
            Key("reject_unscannable", bool, True, "refuse a message holding an archive "
                "clamd cannot fully scan (past the limits above)"),
            Key("max_threads", int, 4, "messages clamd scans at once", minimum=1,
                maximum=64),
            Key("freshclam", bool, True, "update the signatures from the ClamAV mirror "
                "(freshclam)"),
            Key("database_mirror", str, "database.clamav.net", "where freshclam downloads "
                "from; a local mirror for sites without internet access",
                check=_one_line, allowed="a host name or URL"),
            Key("timeout", int, 120, "seconds to wait for clamd's verdict", minimum=5,
                maximum=600),
            Key("on_error", str, "defer", "when clamd cannot be reached, has no signatures "
                "or fails: defer (451, SME defer_on_error) or accept (unscanned, with a "
                "header saying so)", choices=("defer", "accept")),
        ),
    ),
    Section(
        "imap",
        "Dovecot IMAP (143 STARTTLS, 993 TLS).",
        (
            Key("enabled", bool, True, "serve IMAP"),
            _access("IMAP", 143),
            Key("connections", int, 400,
                "simultaneous IMAP sessions in all (SME ConcurrencyLimit); more are "
                "dropped and logged", minimum=1, maximum=10000),
            Key("connections_per_ip", int, 20,
                "simultaneous IMAP logins per user and address (SME ConcurrencyLimitPerIP)",
                minimum=1, maximum=1000),
        ),
    ),
    Section(
        "pop3",
        "Dovecot POP3 (110 STARTTLS, 995 TLS).",
        (
            Key("enabled", bool, True, "serve POP3"),
            _access("POP3", 110),
        ),
    ),
    Section(
        "tls",
        "The certificate and ciphers of every TLS service. Drop your own certificate "
        "(with its chain) and key in /var/lib/appliance/tls/cert.pem and key.pem, then run "
        "`appliance apply`; a self-signed one is made on first boot.",
        (
            # One for both: Dovecot ignores ssl_min_protocol inside a protocol block.
            _tls_min("IMAP and POP3 (993, 995, and STARTTLS on 143 and 110), which one "
                     "server (Dovecot) answers", name="min_version"),
            Key("ciphers", str, MODERN_CIPHERS,
                "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are all modern) for IMAP, "
                "POP3, HTTPS and any SMTP daemon whose tls_ciphers is empty",
                check=_ciphers, allowed="an OpenSSL cipher string"),
            Key("acme", bool, False, "obtain and renew the certificate from an ACME CA "
                "(RFC 8555, e.g. Let's Encrypt) by HTTP-01 on port 80: for the host name, "
                "plus mta-sts., autoconfig. and autodiscover. of each mail domain where "
                "those resolve to this appliance; renewed at two thirds of its lifetime "
                "(`appliance cert status`, `appliance cert renew`). Replaces cert.pem and "
                "key.pem (the previous pair is kept in tls/previous/)"),
            Key("acme_directory", str, ACME_LETSENCRYPT,
                "the ACME CA's directory URL (default: Let's Encrypt production)",
                check=_https_url, allowed="an https:// URL"),
            Key("acme_email", str, "", "contact address given to the ACME CA for expiry "
                "notices; empty: none", check=_email_or_empty, allowed="an e-mail address"),
            Key("acme_ca_bundle", str, "", "a PEM file of CA certificates to trust for the "
                "ACME server itself (a private CA); empty: the system's CAs",
                check=_absolute_path_or_empty, allowed="an absolute path"),
            Key("mta_sts_mode", str, "testing", "MTA-STS policy published at "
                "https://mta-sts.DOMAIN/.well-known/mta-sts.txt for every mail domain "
                "(RFC 8461): testing (senders report but deliver), enforce (senders "
                "refuse to deliver without verified TLS to this host) or none (withdraw "
                "a policy)", choices=("testing", "enforce", "none")),
            Key("mta_sts_max_age", int, 604800, "seconds sending servers keep the "
                "MTA-STS policy (a week; RFC 8461 allows up to a year)",
                minimum=3600, maximum=31557600),
            Key("mta_sts_outbound", bool, True, "outbound mail follows the receiving "
                "domains' MTA-STS policies (postfix-mta-sts-resolver): a domain in "
                "enforce mode gets mail only over TLS with a verified certificate"),
            Key("dane", bool, True, "outbound mail uses DANE (RFC 7672) where the "
                "receiving domain publishes DNSSEC-signed TLSA records: TLS required and "
                "the certificate checked against them. Needs network.dnssec"),
        ),
    ),
    Section(
        "webmail",
        "Roundcube at https://<host>/webmail (443; 80 redirects there). Users log in with "
        "their own name and password; mail is sent through 587 as them.",
        (
            Key("enabled", bool, True, "serve webmail (SME horde status)"),
            Key("access", str, "public", "public: from anywhere; private: only from "
                "network.local_networks (SME httpd-e-smith/horde access)",
                choices=("private", "public")),
            Key("title", str, "Webmail", "name on the login page and in the window title "
                "(SME horde Name)", check=_one_line, allowed="one line of text"),
            Key("upload_max_mb", int, 10, "largest attachment upload in MB (SME php "
                "UploadMaxFilesize); lowered to what fits smtpd.max_message_size once "
                "base64-encoded",
                minimum=1, maximum=1000),
            Key("memory_limit_mb", int, 128, "PHP memory limit in MB (SME php MemoryLimit); "
                "Roundcube holds a message and its attachments in memory",
                minimum=64, maximum=4096),
            _tls_min("443"),
        ),
    ),
)


@dataclass(frozen=True)
class Renamed:
    """A key of an older volume format: its new name (None: removed, kept as a comment),
    the format that changed it, and why. appliance.migrations rewrites an older
    appliance.toml by these rows; the loader names the new key when someone writes the
    old one by hand. A release that renames or removes a key adds a row."""

    old: str  # dotted, as the older format wrote it
    new: str | None
    format: int  # the first volume format (appliance.migrations.version) without `old`
    why: str


KEY_HISTORY: tuple[Renamed, ...] = (
    Renamed("tls.tls_min_version", "tls.min_version", 2,
            "inside [tls] the prefix said nothing ([smtpd.NAME] and [webmail] keep "
            "tls_min_version: there it sits among settings of other kinds)"),
)


def _plugin(name: str, doc: str, *keys: Key) -> Section:
    return Section(f"smtpd.{name}", doc, keys)


# SME's default lists (seed 002): comma-separated in SME's db, toml lists here.
RBL_LIST = ["bl.spamcop.net", "dnsbl-1.uceprotect.net", "dnsbl-2.uceprotect.net",
            "psbl.surriel.com", "zen.spamhaus.org"]
SBL_LIST = ["multi.surbl.org", "black.uribl.com", "rhsbl.sorbs.net"]
UBL_LIST = ["multi.surbl.org:8-16-64-128", "black.uribl.com", "rhsbl.sorbs.net"]
REJECT_MODES = ("deny", "naughty", "off")

PLUGIN_SECTIONS: tuple[Section, ...] = (
    _plugin(
        "whitelists", "Exemptions from the spam checks (qpsmtpd whitelist files).",
        Key("hosts", list, [], "client addresses or networks exempt from every check "
            "(whitelisthosts)", check=_ip_or_networks, allowed="IPs or CIDR networks"),
        Key("helo", list, [], "HELO names exempt from the HELO checks (whitelisthelo)",
            check=_addresses_or_patterns, allowed="host names"),
        Key("senders", list, [], "envelope senders exempt from the checks: user@domain or "
            "@domain (whitelistsenders)", check=_addresses_or_patterns,
            allowed="addresses or @domains"),
    ),
    _plugin(
        "karma", "Remembers each client's history; bad ones wait a day (SME Karma).",
        Key("enabled", bool, False, "track karma and refuse naughty hosts (SME Karma)"),
        Key("negative", int, 2, "bad minus good connections that put a host in the "
            "penalty box (SME KarmaNegative)", minimum=1, maximum=1000),
        Key("strikes", int, 3, "karma points one connection needs to count as good or "
            "bad (SME KarmaStrikes)", minimum=1, maximum=100),
        Key("penalty_days", int, 1, "days a naughty host stays refused", minimum=1,
            maximum=365),
    ),
    _plugin(
        "earlytalker", "Refuses clients that talk before the greeting (SME earlytalker).",
        Key("enabled", bool, True, "check for early talkers"),
        Key("wait", int, 1, "seconds to hold the greeting while listening", minimum=0,
            maximum=30),
        Key("check_at", str, "connect", "when to listen: before the greeting or before "
            "the 354 of DATA", choices=("connect", "data")),
        Key("remember", int, 86400, "seconds a client that waited politely is greeted "
            "without the pause (as Postfix postscreen); 0: pause every time", minimum=0,
            maximum=30 * 86400),
        Key("reject", str, "naughty", "what a talker gets", choices=REJECT_MODES),
    ),
    _plugin(
        "count_unrecognized_commands",
        "Hangs up on clients that send unknown commands (SME count_unrecognized_commands).",
        Key("threshold", int, 4, "unknown commands before the connection is closed",
            minimum=1, maximum=1000),
    ),
    _plugin(
        "bogus_bounce", "Refuses bounces that cannot be real (SME bogus_bounce).",
        Key("enabled", bool, True, "check null-sender mail"),
    ),
    _plugin(
        "bcc", "Copies mail to an archive mailbox (SME Bcc, BccMode, BccUser).",
        Key("enabled", bool, False, "copy mail (SME Bcc)"),
        Key("mode", str, "cc", "cc adds an X-Copied-To header, bcc is silent (SME BccMode)",
            choices=("cc", "bcc")),
        Key("user", str, "maillog", "the mailbox (user or address) that gets the copies "
            "(SME BccUser)"),
        Key("direction", str, "all", "which mail is copied", choices=("all", "incoming",
                                                                   "outgoing")),
    ),
    _plugin(
        "relay", "Who may relay (SME relayclients, norelayclients, RelayRequiresAuth).",
        Key("relay_clients", list, [], "networks besides network.local_networks that may "
            "relay without AUTH (SME UnauthenticatedRelayClients)", check=_ip_or_networks,
            allowed="IPs or CIDR networks"),
        Key("norelay_clients", list, [], "addresses inside the relay networks that may not "
            "relay without AUTH (SME norelayclients)", check=_ip_or_networks,
            allowed="IPs or CIDR networks"),
        Key("require_auth", bool, True, "465 and 587 demand AUTH from everyone; false lets "
            "relay clients send there without it (SME RelayRequiresAuth)"),
    ),
    _plugin(
        "helo", "Checks the HELO/EHLO name (SME HeloPolicy, badhelo).",
        Key("policy", str, "lenient", "lenient, rfc or strict: qpsmtpd's helo tests at "
            "each level (SME HeloPolicy)", choices=("lenient", "rfc", "strict")),
        Key("bad_helo", list, ["aol.com", "yahoo.com"], "HELO names always refused "
            "(SME badhelo)", check=_addresses_or_patterns, allowed="host names"),
        Key("reject", str, "naughty", "what a bad HELO gets", choices=REJECT_MODES),
    ),
    _plugin(
        "resolvable_fromhost", "The sender's domain must exist in DNS (SME "
        "resolvable_fromhost).",
        Key("enabled", bool, True, "check the sender's domain"),
        Key("reject", str, "deny", "what an unresolvable domain gets", choices=REJECT_MODES),
    ),
    _plugin(
        "headers", "Basic header checks (SME headers, MaximumDateOffset).",
        Key("required", list, ["From", "Date"], "headers every message must have",
            check=_addresses_or_patterns, allowed="header names"),
        Key("maximum_date_offset", int, 0, "days the Date header may be in the future or "
            "past; 0: not checked (SME MaximumDateOffset)", minimum=0, maximum=3650),
    ),
    _plugin(
        "loadcheck", "Defers mail from outside while this container is overloaded (SME "
        "MaxLoad).",
        Key("max_load", int, 7, "load above which internet mail is deferred (SME "
            "MaxLoad), measured for this container, not the host: N*p/(1-p) with p its "
            "CPU pressure (cgroup cpu.pressure, some avg10) and N the CPUs it may use "
            "(cpu.max); without PSI, the host's load average scaled to those CPUs",
            minimum=1, maximum=1000),
    ),
    _plugin(
        "rhsbl", "Sender-domain block lists (SME RHSBL, SBLList).",
        Key("enabled", bool, False, "look up sender domains (SME RHSBL)"),
        Key("zones", list, SBL_LIST, "zones; 'zone:message' gives a custom refusal "
            "(SME SBLList)", check=_zones, allowed="DNS zones"),
    ),
    _plugin(
        "spf", "Sender Policy Framework (SME SPFRejectPolicy).",
        Key("reject_policy", int, 0, "when no DMARC policy exists, reject on SPF: 0 never, "
            "1 fail, 2 softfail too, 3 neutral too, 4 errors and no record too "
            "(SME SPFRejectPolicy)", minimum=0, maximum=4),
    ),
    _plugin(
        "dkim", "Verifies DKIM signatures of incoming mail (used by DMARC).",
        Key("enabled", bool, True, "verify signatures and add Authentication-Results"),
    ),
    _plugin(
        "dmarc", "DMARC policy of the From: domain (SME DMARCReject, DMARCReporting).",
        Key("enabled", bool, True, "evaluate DMARC; false: the dkim plugin writes the "
            "Authentication-Results header itself"),
        Key("reject", bool, False, "refuse mail whose domain's policy says reject (SME "
            "DMARCReject)"),
        Key("reporting", bool, True, "record results and send daily aggregate reports to "
            "rua addresses (SME DMARCReporting)"),
        Key("report_sender", str, "", "From address of the reports; empty: "
            "postmaster@system.domain"),
    ),
    _plugin(
        "dnsbl", "Client-address block lists (SME DNSBL, RBLList, dnsbl_allow).",
        Key("enabled", bool, False, "look up clients' addresses (SME DNSBL)"),
        Key("zones", list, RBL_LIST, "zones; 'zone:message' makes it an A-record list "
            "with a custom refusal where %IP% is the client (SME RBLList)", check=_zones,
            allowed="DNS zones"),
        Key("allow", list, [], "client addresses or networks never looked up "
            "(SME dnsbl_allow)", check=_ip_or_networks, allowed="IPs or CIDR networks"),
        Key("reject", str, "naughty", "what a listed client gets", choices=REJECT_MODES),
    ),
    _plugin(
        "naughty", "Delivers the deferred refusal of an early plugin (SME naughty).",
        Key("reject_at", str, "mail", "stage at which a marked connection is refused, so "
            "the log shows sender (and recipients)", choices=("mail", "rcpt", "data")),
    ),
    _plugin(
        "uribl", "Block lists for the domains of links in the body (SME URIBL, UBLList).",
        Key("enabled", bool, False, "look up link domains (SME URIBL)"),
        Key("zones", list, UBL_LIST, "zones; 'zone:8-16-64' only counts those bits of a "
            "combined list's answer (SME UBLList)", check=_zones, allowed="DNS zones"),
        Key("action", str, "deny", "deny the message or only add a header",
            choices=("deny", "add-header")),
        Key("max_lookups", int, 20, "most link domains looked up per message", minimum=1,
            maximum=200),
    ),
    _plugin(
        "badmailfrom", "Refused senders (SME badmailfrom, qmail spamcontrol patterns).",
        Key("patterns", list, [], "user@domain, @domain, or patterns with * ? [...] and a "
            "leading ! to exempt", check=_addresses_or_patterns, allowed="patterns"),
    ),
    _plugin(
        "sender_login", "Our logged-in users send only as themselves (as Postfix's "
        "reject_sender_login_mismatch): MAIL FROM and every From: address must deliver "
        "to the user (their own, a pseudonym, a group they get mail of) or match "
        "send_as here or users.NAME.send_as; else 553 5.7.1 at MAIL, 550 5.7.1 after DATA. "
        "The null sender is allowed.",
        Key("enabled", bool, True, "check the senders of authenticated mail"),
        Key("check_from_header", bool, True, "check the From: header addresses too, not "
            "only MAIL FROM"),
        Key("send_as", list, [], "sender addresses every authenticated user may use: "
            "user@domain, @domain, patterns with * ? [...] and a leading ! to exempt; "
            "\"*\": any", check=_sender_patterns,
            allowed="addresses, @domains, patterns or *"),
    ),
    _plugin(
        "badmailfromto", "Refused sender and recipient pairs (SME badmailfromto).",
        Key("pairs", list, [], "'sender recipient': that sender cannot reach that "
            "recipient, who seems not to exist", check=_from_to_pairs,
            allowed="'sender recipient' strings"),
    ),
    _plugin(
        "badrcptto", "Refused recipients (SME badrcptto, Visible internal).",
        Key("patterns", list, [], "recipient addresses or patterns with * ? [...]",
            check=_addresses_or_patterns, allowed="patterns"),
    ),
    _plugin(
        "check_goodrcptto", "Only existing recipients (SME check_goodrcptto).",
        Key("extension_separator", str, EXTENSION_SEPARATORS,
            "the characters that start an address extension: user+ext@ and user-ext@ "
            "reach user, split at the first of them (SME extn is '-'; Postfix's and "
            "Dovecot's recipient_delimiter follow); a character that occurs in a user, "
            "group or pseudonym name is left out (with a user mary-ann, '-' starts no "
            "extension, so mary-ann+news@ is hers); empty: no extensions",
            check=_extension_separators, allowed="any of + - = once each, or empty"),
    ),
    _plugin(
        "greylisting", "Greylisting: the first try from an unknown triplet is deferred.",
        Key("enabled", bool, False, "greylist mail from the internet"),
        Key("black_timeout", int, 3000, "seconds a new triplet is deferred", minimum=0,
            maximum=86400),
        Key("grey_timeout", int, 12000, "seconds a deferred triplet has to come back",
            minimum=60, maximum=7 * 86400),
        Key("white_timeout", int, 36 * 86400, "seconds a passed triplet stays welcome",
            minimum=3600, maximum=365 * 86400),
    ),
    _plugin(
        "tnef2mime", "Turns winmail.dat (TNEF) attachments into MIME parts (SME tnef2mime).",
        Key("enabled", bool, True, "convert TNEF"),
    ),
    _plugin(
        "pattern_filter", "Refuses attachments by file name (SME PatternsScan).",
        Key("enabled", bool, False, "check attachment names (SME PatternsScan)"),
        Key("patterns", list, EXECUTABLE_PATTERNS, "file-name patterns refused, with * "
            "and ?; the default is Windows executable and script types (zip allowed)",
            check=_addresses_or_patterns, allowed="patterns such as *.exe"),
    ),
    _plugin(
        "disclaimer", "Adds a disclaimer to mail from our domains to other domains "
        "(SME disclaimer).",
        Key("enabled", bool, False, "add disclaimers"),
        Key("text", str, "", "the disclaimer for every domain; a domain's own "
            "[domains.*].disclaimer wins", multiline=True),
    ),
    _plugin(
        "auth", "SMTP AUTH (SME Authentication).",
        # SASL mechanism names are case-insensitive (RFC 4422 3.1)
        Key("mechanisms", list, ["PLAIN", "LOGIN"], "mechanisms offered",
            check=lambda v: None if v and {m.upper() for m in v} <= {"PLAIN", "LOGIN"} else
            "only PLAIN and LOGIN are available", allowed="PLAIN, LOGIN"),
        Key("max_failures", int, 3, "failed AUTH attempts before the connection is closed",
            minimum=1, maximum=100),
    ),
    _plugin(
        "dkim_sign", "DKIM-signs mail sent by our users (SME DKIMSigning).",
        Key("enabled", bool, False, "sign outgoing mail of our domains (SME DKIMSigning)"),
        Key("selector", str, "default", "selector of the default key",
            check=_hostname, allowed="one DNS label"),
    ),
)

SECTIONS = SECTIONS + PLUGIN_SECTIONS

VISIBLE = Key("visible", str, "public", "internal: unreachable from the internet (SME Visible)",
              choices=("public", "internal"))
# As on SME, lists are for the office: only network.local_networks and our logged-in
# users may write to a group unless it is made public.
GROUP_VISIBLE = Key("visible", str, "internal", "public: anyone on the internet may write "
                    "to the group; internal: only network.local_networks and authenticated "
                    "users, the internet gets 550 5.7.1 (SME Visible)",
                    choices=("public", "internal"))
PSEUDONYM_VISIBLE = Key("visible", str, "account", "account: as visible as the user or "
                        "group it delivers to (a pseudonym of an internal group stays "
                        "internal); public or internal: set for this address alone "
                        "(SME Visible)", choices=("account", "public", "internal"))

COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        "users",
        "Mail users: [users.NAME]. Add them with `appliance user add NAME`.",
        (
            Key("password", str, "", "password hash; set with `appliance user passwd NAME`",
                check=_password_hash, allowed="{BLF-CRYPT} hash", secret=True),
            Key("full_name", str, "", "the user's full name"),
            VISIBLE,
            Key("forward", list, [], "forward the user's mail to these addresses "
                "(SME ForwardAddress)", check=_addresses, allowed="e-mail addresses"),
            Key("keep_copy", bool, False, "with forward: keep a copy here too "
                "(SME EmailForward both)"),
            Key("quota_mb", int, 0, "mailbox size limit in MB; 0: none (SME MaxBlocks)",
                minimum=0, maximum=10_000_000),
            Key("everyone_email", bool, True, "receive mail sent to everyone@ "
                "(SME EveryoneEmail)"),
            Key("sort_spam", str, "global", "sort tagged spam into junkmail: global "
                "follows spamassassin.sort_spam (SME SortSpam)",
                choices=("global", "enabled", "disabled")),
            Key("send_as", list, [], "sender addresses this user may use besides those "
                "that deliver to them (smtpd.sender_login): user@domain, @domain, "
                "patterns with * ? [...] and a leading ! to exempt; \"*\": any",
                check=_sender_patterns, allowed="addresses, @domains, patterns or *"),
            Key("messages_per_hour", int, 0, "messages this user may send in an hour; "
                "0: limits.user_messages_per_hour", minimum=0, maximum=1_000_000),
            Key("recipients_per_message", int, 0, "recipients per message this user may "
                "send to; 0: limits.user_recipients_per_message", minimum=0,
                maximum=10000),
            Key("app_passwords", list, [], "extra passwords for IMAP, POP3 and SMTP "
                "submission, one per device, never the webmail: \"NAME CREATED HASH\"; "
                "made with `appliance user app-password add USER NAME`",
                check=app_passwords.problem, secret=True,
                allowed=f"at most {app_passwords.MAX_PER_USER} made by `appliance user "
                "app-password add`"),
        ),
        USERNAME_RE,
        "lower-case letters, digits, '.', '_' or '-', starting with a letter, at most 32",
    ),
    Collection(
        "groups",
        "Groups: [groups.NAME]; mail to NAME@ every local domain reaches all members.",
        (
            Key("members", list, [], "user names", allowed="existing users"),
            Key("description", str, "", "what this group is"),
            GROUP_VISIBLE,
            Key("exclude_users", list, [], "members who do not get the group's mail "
                "(SME EmailExcludeUsers)", check=_user_names, allowed="existing users"),
            Key("exclude_groups", list, [], "members of these groups do not get the "
                "group's mail (SME EmailExcludeGroups)", check=_user_names,
                allowed="existing groups"),
        ),
        USERNAME_RE,
        "lower-case letters, digits, '.', '_' or '-', starting with a letter, at most 32",
    ),
    Collection(
        "pseudonyms",
        "Extra addresses: [pseudonyms.\"NAME\"] (NAME or NAME@domain) delivered to an "
        "account.",
        (Key("account", str, "", "the user or group that receives it",
             allowed="an existing user or group"),
         PSEUDONYM_VISIBLE),
        re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}(@" + _LABEL.replace("A-Za-z", "a-z") +
                   r"(\." + _LABEL.replace("A-Za-z", "a-z") + r")+)?$"),
        "a lower-case local part, or local@domain",
    ),
    Collection(
        "domains",
        "More mail domains delivered here besides system.domain: [domains.\"example.org\"].",
        (
            Key("description", str, "", "what this domain is for"),
            Key("mail_server", str, "", "deliver this domain's mail to that server "
                "(host or host:port) instead of here (SME MailServer)",
                check=_mail_server, allowed="host, [ip] or host:port"),
            Key("dkim_signing", bool, True, "sign this domain's mail when "
                "smtpd.dkim_sign is on (SME DKIMSigning per domain)"),
            Key("disclaimer", str, "", "disclaimer for mail from this domain",
                multiline=True),
        ),
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
