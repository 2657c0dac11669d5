"""SME Server's `config`, `db` and `signal-event`, on top of appliance.toml.

    config setprop qpsmtpd DNSBL enabled RBLList zen.spamhaus.org
    db accounts setprop alice Visible internal
    db domains setprop test.com MailServer a.b.c.d
    signal-event email-update

As on SME Server, `setprop` and friends only change the database (here: the toml,
validated, comments kept) and `signal-event` makes the services follow (here:
`appliance apply`). Property names map onto toml keys through the tables below, the
only place that knows SME's names; a property this appliance does not have is refused
with the reason, never silently ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance import accounts, paths
from appliance.config import Config, ConfigError, edit, load, save
from appliance.config.schema import find_key


@dataclass(frozen=True)
class Prop:
    """One SME property: the toml key it is (`{}` is the account or domain name)."""

    key: str
    true: str = "enabled"  # how SME spells a true boolean ...
    false: str = "disabled"  # ... and a false one
    # SME's Forwarder and Forwarder2: the first of a list key (0), and the rest (1)
    position: int | None = None

    def path(self, name: str = "") -> str:
        return self.key.replace("{}", name)




def _yes_no(key: str) -> Prop:
    return Prop(key, "yes", "no")


def _daemon(name: str) -> dict[str, Prop]:
    return {
        "status": Prop(f"smtpd.{name}.enabled"),
        "TCPPort": Prop(f"smtpd.{name}.port"),
        "Instances": Prop(f"smtpd.{name}.instances"),
        "InstancesPerIP": Prop(f"smtpd.{name}.instances_per_ip"),
        "TlsBeforeAuth": Prop(f"smtpd.{name}.tls_before_auth", "1", "0"),
    }


# config / db configuration: KEY -> PROPERTY -> toml key
CONFIGURATION: dict[str, dict[str, Prop]] = {
    "qpsmtpd": _daemon("smtp") | {
        "LogLevel": Prop("smtpd.log_level"),
        "MaximumDateOffset": Prop("smtpd.headers.maximum_date_offset"),
        "RelayRequiresAuth": Prop("smtpd.relay.require_auth"),
        "Bcc": Prop("smtpd.bcc.enabled"),
        "BccMode": Prop("smtpd.bcc.mode"),
        "BccUser": Prop("smtpd.bcc.user"),
        "DNSBL": Prop("smtpd.dnsbl.enabled"),
        "RBLList": Prop("smtpd.dnsbl.zones"),
        "RHSBL": Prop("smtpd.rhsbl.enabled"),
        "SBLList": Prop("smtpd.rhsbl.zones"),
        "URIBL": Prop("smtpd.uribl.enabled"),
        "UBLList": Prop("smtpd.uribl.zones"),
        "HeloPolicy": Prop("smtpd.helo.policy"),
        "Karma": Prop("smtpd.karma.enabled"),
        "KarmaNegative": Prop("smtpd.karma.negative"),
        "DKIMSigning": Prop("smtpd.dkim_sign.enabled"),
        "DMARCReject": Prop("smtpd.dmarc.reject"),
        "DMARCReporting": Prop("smtpd.dmarc.reporting"),
        "SPFRejectPolicy": Prop("smtpd.spf.reject_policy"),
        "Greylisting": Prop("smtpd.greylisting.enabled"),
        "VirusScan": Prop("clamav.enabled"),
        "MaxScannerSize": Prop("clamav.max_scanner_size"),
        "PatternsScan": Prop("smtpd.pattern_filter.enabled"),
    },
    "sqpsmtpd": _daemon("smtps"),
    "uqpsmtpd": _daemon("submission"),
    "smtpd": {
        "HeloHost": Prop("delivery.helo_host"),
        "disclaimer": Prop("smtpd.disclaimer.enabled"),
        "InstancesPerIP": Prop("smtpd.smtp.instances_per_ip"),
    },
    "qmail": {
        "ConcurrencyLocal": Prop("queue.concurrency_local"),
        "ConcurrencyRemote": Prop("queue.concurrency_remote"),
        "DoubleBounceTo": Prop("queue.double_bounce_to"),
        "MaxMessageSize": Prop("smtpd.max_message_size"),
        "QueueLifetime": Prop("queue.lifetime"),
    },
    # SME's server console settings
    "InternalInterface": {"MTU": Prop("network.mtu")},
    "dnscache": {"Forwarder": Prop("network.dns_forwarders", position=0),
                 "Forwarder2": Prop("network.dns_forwarders", position=1)},
    "fetchmail": {
        "status": Prop("fetchmail.enabled"),
        "Method": Prop("fetchmail.method"),
        "SecondaryMailServer": Prop("fetchmail.secondary_mail_server"),
        "SecondaryMailAccount": Prop("fetchmail.account"),
        "SecondaryMailPassword": Prop("fetchmail.password"),
        "SecondaryMailEnvelope": Prop("fetchmail.sort_header"),
        "FreqOffice": Prop("fetchmail.freq_office"),
        "FreqOutside": Prop("fetchmail.freq_outside"),
        "FreqWeekend": Prop("fetchmail.freq_weekend"),
    },
    "spamassassin": {
        "status": Prop("spamassassin.enabled"),
        "Sensitivity": Prop("spamassassin.sensitivity"),
        "TagLevel": Prop("spamassassin.tag_level"),
        "RejectLevel": Prop("spamassassin.reject_level"),
        "SortSpam": Prop("spamassassin.sort_spam"),
        "SubjectTag": Prop("spamassassin.subject_tag"),
        "Subject": Prop("spamassassin.subject"),
        "MaxMessageSize": Prop("spamassassin.max_message_size"),
        "UseBayes": Prop("spamassassin.use_bayes", "1", "0"),
        "BayesAutoLearnThresholdSpam": Prop("spamassassin.bayes_auto_learn_threshold_spam"),
        "BayesAutoLearnThresholdNonspam":
            Prop("spamassassin.bayes_auto_learn_threshold_nonspam"),
        "MessageRetentionTime": Prop("spamassassin.message_retention_days"),
        "PyzorTimeout": Prop("spamassassin.pyzor_timeout"),
    },
    "clamav": {
        "status": Prop("clamav.enabled"),
        "MaxFileSize": Prop("clamav.max_file_size"),
        "ArchiveMaxCompressionRatio": Prop("clamav.archive_max_compression_ratio"),
        "MaxFiles": Prop("clamav.max_files"),
        "MaxRecursion": Prop("clamav.max_recursion"),
        "HeuristicScanPrecedence": _yes_no("clamav.heuristic_scan_precedence"),
    },
    "imap": {"status": Prop("imap.enabled"), "access": Prop("imap.access"),
             "ConcurrencyLimit": Prop("imap.connections"),
             "ConcurrencyLimitPerIP": Prop("imap.connections_per_ip")},
    "imaps": {"ConcurrencyLimitPerIP": Prop("imap.connections_per_ip")},
    "pop3": {"status": Prop("pop3.enabled"), "access": Prop("pop3.access")},
    "horde": {"status": Prop("webmail.enabled"), "Name": Prop("webmail.title")},
    "SMTPAUTHPROXY": {"Userid": Prop("delivery.smarthost_user"),
                      "Passwd": Prop("delivery.smarthost_password")},
    "passwordstrength": {"Users": Prop("system.password_strength"),
                         "length": Prop("system.password_min_length")},
}

# config keys that hold a value instead of properties (`config set DomainName x`)
VALUES: dict[str, Prop] = {
    "DomainName": Prop("system.domain"),
    "SystemName": Prop("system.hostname"),
    "DelegateMailServer": Prop("delivery.delegate_mail_server"),
    "SMTPSmartHost": Prop("delivery.smarthost"),
    "EmailUnknownUser": Prop("delivery.unknown_user"),
}

ACCOUNTS: dict[str, dict[str, Prop]] = {
    "user": {
        "FirstName": Prop("users.{}.full_name"),
        "Visible": Prop("users.{}.visible"),
        "EveryoneEmail": _yes_no("users.{}.everyone_email"),
        "ForwardAddress": Prop("users.{}.forward"),
        "EmailForward": Prop("users.{}.forward"),  # local|forward|both: see _email_forward
        "Quota": Prop("users.{}.quota_mb"),
        "SortSpam": Prop("users.{}.sort_spam"),
    },
    "group": {
        "Description": Prop("groups.{}.description"),
        "Members": Prop("groups.{}.members"),
        "Visible": Prop("groups.{}.visible"),
        "EmailExcludeUsers": Prop("groups.{}.exclude_users"),
        "EmailExcludeGroups": Prop("groups.{}.exclude_groups"),
    },
    "pseudonym": {"Account": Prop("pseudonyms.{}.account"),
                  "Visible": Prop("pseudonyms.{}.visible")},
}
TABLE_OF = {"user": "users", "group": "groups", "pseudonym": "pseudonyms"}

DOMAINS: dict[str, Prop] = {
    "Description": Prop("domains.{}.description"),
    "MailServer": Prop("domains.{}.mail_server"),
    "DKIMSigning": Prop("domains.{}.dkim_signing"),
    "Disclaimer": Prop("domains.{}.disclaimer"),
}

_FIXED_LEARN_FOLDERS = ("the learning folders are always LearnAsSpam and LearnAsHam; "
                        "set spamassassin.use_bayes to have them learned every hour")
_PHP = ("PHP's limits are webmail.upload_max_mb and webmail.memory_limit_mb, in MB: "
        "`appliance config set webmail.upload_max_mb 10`")
# Keys and properties from SME's documentation that do not apply here, and why.
NOT_HERE: dict[tuple[str, str | None], str] = {
    ("LearnAsSpam", None): _FIXED_LEARN_FOLDERS,
    ("LearnAsHam", None): _FIXED_LEARN_FOLDERS,
    ("php", None): _PHP,
    ("qpsmtpd", "Authentication"): "AUTH is always on: 465 and 587 require it and 25 offers "
                                   "it after STARTTLS; local networks relay without it "
                                   "(network.local_networks)",
    ("qpsmtpd", "Proxy"): "no transparent SMTP proxy: the container does not route traffic",
    ("qpsmtpd", "TCPProxyPort"): "no transparent SMTP proxy: the container does not route "
                                 "traffic",
    ("passwordstrength", "Admin"): "there is no admin password here: the appliance is run "
                                   "as root through docker compose exec",
    ("passwordstrength", "Ibays"): "there are no i-bays here: the appliance serves mail only",
}

EVENTS_THAT_APPLY = ("email-update", "user-modify", "user-create", "user-delete",
                     "password-modify", "group-modify", "group-create", "group-delete",
                     "pseudonym-modify", "pseudonym-create", "pseudonym-delete",
                     "domain-modify", "domain-create", "domain-delete", "post-upgrade",
                     "remoteaccess-update", "console-save")
EVENTS_NOT_HERE = {
    "reboot": "restart the container instead: docker compose restart appliance",
    "post-install": "nothing to do: the image is installed; use signal-event email-update",
}


def _not_here(key: str, prop: str | None = None) -> ConfigError:
    reason = NOT_HERE.get((key, prop)) or NOT_HERE.get((key, None))
    return ConfigError(f"not available here: {reason}" if reason else
                       f"unknown {'property ' + prop + ' of ' if prop else 'key '}{key}")


# ---- values: SME spelling <-> toml -----------------------------------------------------

def _split_list(value: str) -> list[str]:
    """SME lists are comma-separated; old SBLList values are colon-separated zones."""
    if "," not in value and ":" in value:
        parts = value.split(":")
        if all("." in p for p in parts):
            return parts
    return [v.strip() for v in value.split(",") if v.strip()]


def to_toml(prop: Prop, dotted: str, value: str) -> list[str]:
    """An SME property value as arguments for edit.set_value."""
    _, key = edit.resolve(dotted)
    if key.kind is bool:
        if value == prop.true:
            return ["true"]
        if value == prop.false:
            return ["false"]
        return [value]  # edit.convert accepts enabled/disabled, yes/no, 1/0 too
    if key.kind is list:
        return _split_list(value) or [""]
    return [value]


def from_toml(prop: Prop, value: Any) -> str:
    if isinstance(value, bool):
        return prop.true if value else prop.false
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


# ---- the databases ----------------------------------------------------------------------

def _secret(dotted: str) -> bool:
    """Whether the schema declares the key a password (Key.secret): never shown by `show`."""
    found = find_key(dotted)
    return found is not None and found[1].secret


def _names(config: Config, table: str) -> list[str]:
    """Entries of a collection as the (possibly just edited) document has them."""
    return sorted(config.document.get(table, {}))


class Database:
    """One SME database over the toml: entries (KEY=TYPE) with properties."""

    name = ""

    def __init__(self, config: Config) -> None:
        self.config = config
        # what to do once the edited file is saved (a new user's leftover mailbox)
        self.after_save: list[Callable[[], Any]] = []

    def entries(self) -> dict[str, tuple[str, dict[str, Prop]]]:
        """key -> (type, properties)."""
        raise NotImplementedError

    def entry(self, key: str) -> tuple[str, dict[str, Prop]]:
        found = self.entries().get(key)
        if found is None:
            raise _not_here(key)
        return found

    def prop(self, key: str, name: str) -> tuple[Prop, str]:
        kind, props = self.entry(key)
        prop = props.get(name)
        if prop is None:
            raise _not_here(kind if (kind, name) in NOT_HERE else key, name)
        return prop, prop.path(key)

    def get(self, key: str) -> str:
        return self.entry(key)[0]

    def getprop(self, key: str, name: str) -> str:
        prop, dotted = self.prop(key, name)
        value = edit.get_value(self.config, dotted)
        if prop.position == 0:
            return value[0] if value else ""
        if prop.position == 1:
            return ",".join(value[1:])
        return from_toml(prop, value)

    def setprop(self, key: str, pairs: list[str]) -> None:
        if not pairs or len(pairs) % 2:
            raise ConfigError(f"setprop {key} needs PROPERTY VALUE pairs")
        given = list(zip(pairs[::2], pairs[1::2], strict=True))
        given.sort(key=lambda nv: self._position(key, nv[0]))
        for name, value in given:
            self.set_one(key, name, value)

    def set_one(self, key: str, name: str, value: str) -> None:
        prop, dotted = self.prop(key, name)
        if prop.position is not None:
            self._set_position(prop.position, dotted, _split_list(value))
        else:
            edit.set_value(self.config, dotted, to_toml(prop, dotted, value))

    def _position(self, key: str, name: str) -> int:
        """Forwarder before Forwarder2, whichever order they were typed in."""
        prop = self.entries().get(key, ("", {}))[1].get(name)
        return (prop.position or 0) if prop is not None else 0

    def _set_position(self, position: int, dotted: str, given: list[str]) -> None:
        """Position 0: the first (a comma list: all of them; empty: none, so full
        recursion); 1: all after the first, which must be there."""
        items = list(edit.get_value(self.config, dotted))
        if position == 0:
            items = given if len(given) != 1 else given + items[1:]
        elif given and not items:
            raise ConfigError(f"set the first one (Forwarder) before the others: {dotted}",
                              key=dotted)
        else:
            items = items[:1] + given
        edit.set_value(self.config, dotted, items or [""])

    def delprop(self, key: str, names: list[str]) -> None:
        for name in names:
            prop, dotted = self.prop(key, name)
            if prop.position is not None:
                self._set_position(prop.position, dotted, [])
            else:
                edit.unset_value(self.config, dotted)

    def show(self, key: str | None = None) -> str:
        out = []
        for name, (kind, props) in self.entries().items():
            if key is not None and name != key:
                continue
            if kind == "value":
                out.append(f"{name}={self.getprop_value(name)}")
                continue
            out.append(f"{name}={kind}")
            for prop_name in sorted(props):
                value = self.getprop(name, prop_name)
                if value and _secret(props[prop_name].path(name)):  # getprop shows it
                    value = "(set)"
                out.append(f"    {prop_name}={value}")
        if key is not None and not out:
            raise _not_here(key)
        return "\n".join(out) + "\n"

    def getprop_value(self, key: str) -> str:
        raise _not_here(key)

    def set(self, key: str, args: list[str]) -> None:
        raise ConfigError(f"`set` of {self.name} entries is not supported; use setprop")

    def delete(self, key: str) -> None:
        raise ConfigError(f"`delete` of {self.name} entries is not supported")


class Configuration(Database):
    name = "configuration"

    def entries(self) -> dict[str, tuple[str, dict[str, Prop]]]:
        out: dict[str, tuple[str, dict[str, Prop]]] = {k: ("value", {}) for k in VALUES}
        out |= {k: ("service", props) for k, props in CONFIGURATION.items()}
        return out

    def entry(self, key: str) -> tuple[str, dict[str, Prop]]:
        if key in VALUES:
            raise ConfigError(f"{key} holds a value, not properties: "
                              f"use `config get {key}` / `config set {key} VALUE`")
        return super().entry(key)

    def get(self, key: str) -> str:
        if key in VALUES:
            return self.getprop_value(key)
        return super().get(key)

    def getprop_value(self, key: str) -> str:
        prop = VALUES[key]
        return from_toml(prop, edit.get_value(self.config, prop.key))

    def set(self, key: str, args: list[str]) -> None:
        if key in VALUES:
            if len(args) != 1:
                raise ConfigError(f"`config set {key} VALUE` takes one value")
            edit.set_value(self.config, VALUES[key].key, [args[0]])
            return
        kind, _ = super().entry(key)
        if not args or args[0] != kind:
            raise ConfigError(f"{key} is a {kind}: `config set {key} {kind} PROP VALUE...`")
        if args[1:]:
            self.setprop(key, args[1:])

    def delete(self, key: str) -> None:
        if key not in VALUES:
            raise ConfigError(f"{key} is built in and cannot be deleted")
        edit.unset_value(self.config, VALUES[key].key)


class Accounts(Database):
    name = "accounts"

    def entries(self) -> dict[str, tuple[str, dict[str, Prop]]]:
        out = {}
        for kind, table in TABLE_OF.items():
            for name in _names(self.config, table):
                out[name] = (kind, ACCOUNTS[kind])
        return out

    def set_one(self, key: str, name: str, value: str) -> None:
        if name == "EmailForward":
            self._email_forward(key, value)
        else:
            super().set_one(key, name, value)

    def getprop(self, key: str, name: str) -> str:
        if name == "EmailForward":
            self.prop(key, name)
            if not edit.get_value(self.config, f"users.{key}.forward"):
                return "local"
            return "both" if edit.get_value(self.config, f"users.{key}.keep_copy") \
                else "forward"
        return super().getprop(key, name)

    def _email_forward(self, user: str, value: str) -> None:
        self.prop(user, "EmailForward")  # a user?
        if value == "local":
            edit.unset_value(self.config, f"users.{user}.forward")
            edit.unset_value(self.config, f"users.{user}.keep_copy")
        elif value in ("forward", "both"):
            if not edit.get_value(self.config, f"users.{user}.forward"):
                raise ConfigError(f"EmailForward {value} needs a ForwardAddress first",
                                  key=f"users.{user}.forward")
            edit.set_value(self.config, f"users.{user}.keep_copy",
                           ["true" if value == "both" else "false"])
        else:
            raise ConfigError("EmailForward must be local, forward or both",
                              key=f"users.{user}", value=value)

    def set(self, key: str, args: list[str]) -> None:
        """`db accounts set NAME user|group|pseudonym [PROP VALUE...]` creates it."""
        if not args or args[0] not in TABLE_OF:
            raise ConfigError("`db accounts set NAME TYPE`: TYPE is user, group or pseudonym")
        kind, pairs = args[0], args[1:]
        if key in self.entries():
            raise ConfigError(f"{key} already exists as a {self.entries()[key][0]}")
        if kind == "user":  # as `appliance user add`: the admin recorded, no password yet
            accounts.add_user(self.config, key, "")
            # a mailbox an earlier user of this name left is not the new user's
            self.after_save.append(lambda: accounts.archive_mailbox(key))
        else:
            accounts.add_entry(self.config, TABLE_OF[kind], key, {})
        if pairs:
            self.setprop(key, pairs)

    def delete(self, key: str) -> None:
        """Removes the entry; for a user, `signal-event user-delete NAME` then applies
        it and archives the mailbox (as SME's user-delete event removes the account)."""
        kind, _ = self.entry(key)
        if kind == "user":
            accounts.delete_user(self.config, key)
        else:
            accounts.delete_entry(self.config, TABLE_OF[kind], key)


class Domains(Database):
    name = "domains"

    def _primary(self) -> str:
        return str(edit.get_value(self.config, "system.domain"))

    def entries(self) -> dict[str, tuple[str, dict[str, Prop]]]:
        """Every mail domain, the primary (system.domain) first as SME lists it; the
        primary's MailServer is delivery.delegate_mail_server (DelegateMailServer)."""
        primary = self._primary()
        out = {primary: ("domain", {k: p for k, p in DOMAINS.items() if k != "MailServer"})}
        out |= {name: ("domain", DOMAINS) for name in _names(self.config, "domains")
                if name != primary}
        return out

    def set(self, key: str, args: list[str]) -> None:
        if not args or args[0] != "domain":
            raise ConfigError("`db domains set NAME domain [PROP VALUE...]`")
        if key not in self.entries():
            accounts.add_entry(self.config, "domains", key, {})
        if args[1:]:
            self.setprop(key, args[1:])

    def delete(self, key: str) -> None:
        self.entry(key)
        if key == self._primary():
            raise ConfigError(f"{key} is the primary domain (system.domain): change it with "
                              "`config set DomainName NEW`, it cannot be deleted")
        accounts.delete_entry(self.config, "domains", key)


class SpamAssassin(Database):
    """`db spamassassin setprop wbl.global PATTERN White|Black`: SME's global sender
    white and black lists, kept as spamassassin.whitelist and .blacklist."""

    name = "spamassassin"
    KEY = "wbl.global"
    LISTS = {"White": "spamassassin.whitelist", "Black": "spamassassin.blacklist"}

    def entries(self) -> dict[str, tuple[str, dict[str, Prop]]]:
        return {self.KEY: ("wbl", {})}

    def _lists(self) -> dict[str, list[str]]:
        return {colour: list(edit.get_value(self.config, dotted))
                for colour, dotted in self.LISTS.items()}

    def getprop(self, key: str, name: str) -> str:
        self.entry(key)
        return next((c for c, items in self._lists().items() if name in items), "")

    def set_one(self, key: str, name: str, value: str) -> None:
        self.entry(key)
        colour = value.capitalize()
        if colour not in self.LISTS:
            raise ConfigError("a wbl.global entry is White or Black", key=name, value=value)
        self._remove(name)
        edit.set_value(self.config, self.LISTS[colour], self._lists()[colour] + [name])

    def _remove(self, name: str) -> None:
        for colour, items in self._lists().items():
            if name in items:
                items.remove(name)
                edit.set_value(self.config, self.LISTS[colour], items or [""])

    def delprop(self, key: str, names: list[str]) -> None:
        self.entry(key)
        for name in names:
            self._remove(name)

    def show(self, key: str | None = None) -> str:
        if key not in (None, self.KEY):
            raise _not_here(key)
        out = [f"{self.KEY}=wbl"]
        for colour, items in self._lists().items():
            out += [f"    {item}={colour}" for item in items]
        return "\n".join(out) + "\n"


DATABASES: dict[str, type[Database]] = {
    "configuration": Configuration, "accounts": Accounts, "domains": Domains,
    "spamassassin": SpamAssassin,
}
OTHER_DATABASES = {"hosts": "there is no hosts database "
                   "here: DNS comes from the resolver", "networks": "local networks are "
                   "network.local_networks in appliance.toml: appliance config set "
                   "network.local_networks NET..."}

ACTIONS = ("get", "set", "setprop", "getprop", "delprop", "show", "print", "delete", "keys")


def run_db(db_name: str, argv: list[str], out: Callable[[str], Any] = sys.stdout.write) -> int:
    """One `db DATABASE ACTION ...` command. Changes are saved (validated), not applied."""
    if db_name in OTHER_DATABASES:
        raise ConfigError(f"not available here: {OTHER_DATABASES[db_name]}")
    if db_name not in DATABASES:
        raise ConfigError(f"unknown database {db_name!r}; there are: {', '.join(DATABASES)}")
    if not argv or argv[0] not in ACTIONS:
        raise ConfigError(f"usage: db {db_name} {'|'.join(ACTIONS)} [KEY [PROP [VALUE]...]]")
    action, args = argv[0], argv[1:]
    config = load(paths.CONFIG)
    db = DATABASES[db_name](config)
    if action in ("show", "print"):
        out(db.show(args[0] if args else None))
        return 0
    if action == "keys":
        out("".join(f"{k}\n" for k in db.entries()))
        return 0
    if not args:
        raise ConfigError(f"`{action}` needs a key")
    key, rest = args[0], args[1:]
    if action == "get":
        out(db.get(key) + "\n")
        return 0
    if action == "getprop":
        if len(rest) != 1:
            raise ConfigError("usage: getprop KEY PROPERTY")
        out(db.getprop(key, rest[0]) + "\n")
        return 0
    if action == "setprop":
        db.setprop(key, rest)
    elif action == "delprop":
        db.delprop(key, rest)
    elif action == "set":
        db.set(key, rest)
    elif action == "delete":
        db.delete(key)
    save(config.document, paths.CONFIG)
    for step in db.after_save:
        step()
    return 0


def signal_event(argv: list[str], out: Callable[[str], Any] = sys.stdout.write) -> int:
    if not argv:
        raise ConfigError("usage: signal-event EVENT [ARGS]")
    event = argv[0]
    if event in EVENTS_NOT_HERE:
        raise ConfigError(f"{event}: not here: {EVENTS_NOT_HERE[event]}")
    if event not in EVENTS_THAT_APPLY:
        raise ConfigError(f"unknown event {event!r}; events that apply the configuration: "
                          + ", ".join(EVENTS_THAT_APPLY))
    from appliance.apply import apply

    config = load(paths.CONFIG)
    plan = apply(config)
    out(f"{event}: " + (", ".join(plan.services) + " updated" if plan.services
                        else "nothing changed") + "\n")
    if event == "user-delete":
        # SME's user-delete removes the account's mail; here it is archived, once
        # Dovecot (just reloaded) no longer knows the user
        for name in argv[1:]:
            if name not in config.data["users"] and (where := accounts.archive_mailbox(name)):
                out(f"user-delete: {name}'s mailbox is kept in {where}\n")
    return 0


def _main(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except ConfigError as e:
        sys.stderr.write(f"{sys.argv[0].rsplit('/', 1)[-1]}: {e}\n")
        return 2


def config_main() -> int:
    """`config ACTION ...` = `db configuration ACTION ...`."""
    return _main(lambda: run_db("configuration", sys.argv[1:]))


def db_main() -> int:
    args = sys.argv[1:]
    if not args:
        sys.stderr.write("usage: db DATABASE ACTION ...\n")
        return 2
    return _main(lambda: run_db(args[0], args[1:]))


def signal_event_main() -> int:
    return _main(lambda: signal_event(sys.argv[1:]))
