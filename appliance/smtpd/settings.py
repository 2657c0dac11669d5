"""The SMTP daemons' settings file (/etc/appliance/smtpd.json) as a typed contract.

The renderer (appliance.services.smtpd) builds a `Settings` from the schema-validated
appliance.toml and writes `to_json()`; every daemon builds its `Settings` back with
`from_dict()` at start and on SIGHUP. Both sides go through `from_dict()`, so the file
cannot say anything the daemon would not take. A plugin gets its own frozen section
(`settings.plugin_settings.NAME`), already checked, and only precompiles.

Defaults live in the schema alone: no field here has one. A key that is missing, unknown
or of the wrong type (a file edited by hand, or written by another version) raises
`SettingsError` naming the key; a plugin value the schema would refuse raises
`PluginError` the same way, so no daemon ever runs half-configured.
"""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from appliance.config.load import check_value
from appliance.config.schema import PLUGIN_SECTIONS, SECTIONS, SMTP_DAEMONS, Section
from appliance.security.bans import Rules


class SettingsError(ValueError):
    """The settings file does not match this contract; the message names the key."""


class PluginError(SettingsError):
    """A plugin cannot be loaded with these settings."""


# ---- one section per plugin: exactly its [smtpd.NAME] keys -------------------------------


@dataclass(frozen=True)
class WhitelistsSettings:
    hosts: tuple[str, ...]
    helo: tuple[str, ...]
    senders: tuple[str, ...]  # with spamassassin.whitelist (SME wbl.global White)


@dataclass(frozen=True)
class KarmaSettings:
    enabled: bool
    negative: int
    strikes: int
    penalty_days: int


@dataclass(frozen=True)
class EarlytalkerSettings:
    enabled: bool
    wait: int
    check_at: str
    remember: int
    reject: str


@dataclass(frozen=True)
class CountUnrecognizedCommandsSettings:
    threshold: int


@dataclass(frozen=True)
class BogusBounceSettings:
    enabled: bool


@dataclass(frozen=True)
class BccSettings:
    enabled: bool
    mode: str
    user: str
    direction: str


@dataclass(frozen=True)
class RelaySettings:
    relay_clients: tuple[str, ...]
    norelay_clients: tuple[str, ...]
    require_auth: bool


@dataclass(frozen=True)
class HeloSettings:
    policy: str
    bad_helo: tuple[str, ...]
    reject: str


@dataclass(frozen=True)
class ResolvableFromhostSettings:
    enabled: bool
    reject: str


@dataclass(frozen=True)
class HeadersSettings:
    required: tuple[str, ...]
    maximum_date_offset: int


@dataclass(frozen=True)
class LoadcheckSettings:
    max_load: int


@dataclass(frozen=True)
class RhsblSettings:
    enabled: bool
    zones: tuple[str, ...]


@dataclass(frozen=True)
class SpfSettings:
    reject_policy: int


@dataclass(frozen=True)
class DkimSettings:
    enabled: bool


@dataclass(frozen=True)
class DmarcSettings:
    enabled: bool
    reject: bool
    reporting: bool
    report_sender: str


@dataclass(frozen=True)
class DnsblSettings:
    enabled: bool
    zones: tuple[str, ...]
    allow: tuple[str, ...]
    reject: str


@dataclass(frozen=True)
class NaughtySettings:
    reject_at: str


@dataclass(frozen=True)
class UriblSettings:
    enabled: bool
    zones: tuple[str, ...]
    action: str
    max_lookups: int


@dataclass(frozen=True)
class BadmailfromSettings:
    patterns: tuple[str, ...]  # with spamassassin.blacklist (SME wbl.global Black)


@dataclass(frozen=True)
class SenderLoginSettings:
    enabled: bool
    check_from_header: bool
    send_as: tuple[str, ...]


@dataclass(frozen=True)
class BadmailfromtoSettings:
    pairs: tuple[str, ...]


@dataclass(frozen=True)
class BadrcpttoSettings:
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class CheckGoodrcpttoSettings:
    extension_separator: str  # the delimiters in effect (accounts.recipient_delimiters)


@dataclass(frozen=True)
class GreylistingSettings:
    enabled: bool
    black_timeout: int
    grey_timeout: int
    white_timeout: int


@dataclass(frozen=True)
class Tnef2mimeSettings:
    enabled: bool


@dataclass(frozen=True)
class PatternFilterSettings:
    enabled: bool
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class DisclaimerSettings:
    enabled: bool
    text: str


@dataclass(frozen=True)
class AuthSettings:
    mechanisms: tuple[str, ...]
    max_failures: int


@dataclass(frozen=True)
class DkimSignSettings:
    enabled: bool
    selector: str


# ---- the content filters: what the pipeline needs of [spamassassin] and [clamav] ----------


@dataclass(frozen=True)
class SpamassassinSettings:
    # tag_level and reject_level are what sensitivity makes of them (SME's table);
    # reject_level None: never refused
    DERIVED: ClassVar[frozenset[str]] = frozenset({"tag_level", "reject_level"})
    enabled: bool
    tag_level: float
    reject_level: float | None
    subject_tag: bool
    subject: str
    max_message_size: int
    scan_local: bool
    timeout: int
    on_error: str
    socket: str


@dataclass(frozen=True)
class ClamavSettings:
    enabled: bool
    max_scanner_size: int
    archive_max_compression_ratio: int
    reject_unscannable: bool
    timeout: int
    on_error: str
    socket: str


@dataclass(frozen=True)
class PluginSettings:
    """Every plugin's section, by plugin name."""

    whitelists: WhitelistsSettings
    karma: KarmaSettings
    earlytalker: EarlytalkerSettings
    count_unrecognized_commands: CountUnrecognizedCommandsSettings
    bogus_bounce: BogusBounceSettings
    bcc: BccSettings
    relay: RelaySettings
    helo: HeloSettings
    resolvable_fromhost: ResolvableFromhostSettings
    headers: HeadersSettings
    loadcheck: LoadcheckSettings
    rhsbl: RhsblSettings
    spf: SpfSettings
    dkim: DkimSettings
    dmarc: DmarcSettings
    dnsbl: DnsblSettings
    naughty: NaughtySettings
    uribl: UriblSettings
    badmailfrom: BadmailfromSettings
    sender_login: SenderLoginSettings
    badmailfromto: BadmailfromtoSettings
    badrcptto: BadrcpttoSettings
    check_goodrcptto: CheckGoodrcpttoSettings
    greylisting: GreylistingSettings
    tnef2mime: Tnef2mimeSettings
    pattern_filter: PatternFilterSettings
    disclaimer: DisclaimerSettings
    auth: AuthSettings
    dkim_sign: DkimSignSettings
    spamassassin: SpamassassinSettings
    clamav: ClamavSettings

    def enabled(self, name: str) -> bool:
        """Whether plugin NAME runs: its `enabled` key; a plugin without one always runs."""
        return bool(getattr(getattr(self, name, None), "enabled", True))


# ---- the daemons ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonSettings:
    """One listener: [smtpd.smtp], [smtpd.smtps] or [smtpd.submission], resolved."""

    enabled: bool
    port: int
    instances: int
    instances_per_ip: int
    tls_min_version: str
    tls_ciphers: str  # tls.ciphers when the daemon's own is empty
    tls_before_auth: bool
    tcp_maxseg: int  # the MSS clamp from network.mtu; 0: none


@dataclass(frozen=True)
class HandoffSettings:
    host: str
    port: int
    timeout: int


@dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[str, ...]
    timeout: int


@dataclass(frozen=True)
class TlsSettings:
    cert: str
    key: str
    report_dir: str  # where each daemon says which pair it serves; empty: nowhere


@dataclass(frozen=True)
class UserLimits:
    """What one user may send (limits.*, or the user's own override); 0: no limit."""

    messages_per_hour: int
    recipients_per_message: int


@dataclass(frozen=True)
class DomainSettings:
    """A [domains.NAME] entry."""

    description: str
    mail_server: str
    dkim_signing: bool
    disclaimer: str


@dataclass(frozen=True)
class Settings:
    """The whole file: what every daemon shares, and each daemon's own listener."""

    hostname: str
    greeting: str
    timeout: float  # the schema's whole seconds; tests go below its minimum of 5
    min_data_rate: int
    max_message_size: int
    max_recipients: int
    handoff: HandoffSettings
    dns: DnsSettings
    state_dir: str
    queue_dir: str
    queue_min_free: int
    log_level: int
    plugin_settings: PluginSettings
    local_networks: tuple[str, ...]
    trusted_proxies: tuple[str, ...]  # PROXY protocol peers (network.trusted_proxies)
    local_domains: tuple[str, ...]
    primary_domain: str
    delegated_domains: dict[str, str]  # domain -> its mail server
    addresses: dict[str, tuple[str, ...]]  # deliverable address -> the mailboxes it reaches
    internal_addresses: dict[str, str]  # address -> "user" or "list"
    unowned_addresses: tuple[str, ...]
    send_as: dict[str, tuple[str, ...]]  # user -> extra sender patterns
    domains: dict[str, DomainSettings]
    users: dict[str, str]  # user -> password hash
    app_passwords: dict[str, dict[str, str]]  # user -> app password name -> hash
    tls: TlsSettings
    dkim_keys: str
    run_as: str
    daemons: dict[str, DaemonSettings]  # by name: SMTP_DAEMONS, each once
    terse_log: str
    user_limits: dict[str, UserLimits]  # every user's (send_limits, the RCPT cap)
    tarpit_count: int
    tarpit_delay: int
    security: Rules  # failed logins and bans, shared with Dovecot's policy server
    bans_db: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (tuples become lists)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# ---- loading -------------------------------------------------------------------------------

T = TypeVar("T")

# The schema section each plugin's values are checked against: [smtpd.NAME], and the
# content filters' own [spamassassin] and [clamav].
_SCHEMA: dict[str, Section] = {
    **{s.path.split(".", 1)[1]: s for s in PLUGIN_SECTIONS},
    **{s.path: s for s in SECTIONS if s.path in ("spamassassin", "clamav")},
}


def from_dict(data: Any) -> Settings:
    """The settings in DATA (the parsed JSON); SettingsError or PluginError naming the key."""
    settings = _build(Settings, data, "")
    if sorted(settings.daemons) != sorted(SMTP_DAEMONS):
        raise SettingsError(f"daemons: must have exactly {', '.join(SMTP_DAEMONS)}, "
                            f"not {', '.join(sorted(settings.daemons)) or 'none'}")
    for f in fields(PluginSettings):
        _check_plugin(f.name, getattr(settings.plugin_settings, f.name))
    return settings


def from_json(text: str) -> Settings:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise SettingsError(f"not JSON: {e}") from None
    return from_dict(data)


def _check_plugin(name: str, section: Any) -> None:
    """The schema's own check of each value (choices, bounds, patterns): the one place
    these rules are written, applied to the file as they were to appliance.toml."""
    schema = _SCHEMA[name]
    derived: frozenset[str] = getattr(section, "DERIVED", frozenset())
    for f in fields(section):
        key = schema.key(f.name)
        if key is None or f.name in derived:
            continue
        value = getattr(section, f.name)
        problem = check_value(key, list(value) if isinstance(value, tuple) else value)
        if problem:
            shown = "" if key.secret else f" = {value!r}"
            raise PluginError(f"{name}: {f.name}{shown}: {problem} "
                              f"(plugin_settings.{name}.{f.name})")


def _plugin_sections(data: Any, path: str) -> PluginSettings:
    """The plugin sections; a bad one raises PluginError naming the plugin and key."""
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be an object, not {type(data).__name__}")
    try:
        return _build(PluginSettings, data, path)
    except PluginError:
        raise
    except SettingsError as e:
        raise PluginError(str(e)) from None


def _build(cls: type[T], data: Any, path: str) -> T:
    where = path or "the settings"
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: must be an object, not {type(data).__name__}")
    declared = fields(cls)  # type: ignore[arg-type]
    unknown = sorted(set(data) - {f.name for f in declared})
    if unknown:
        raise SettingsError(f"{_join(path, unknown[0])}: unknown key (a settings file "
                            "from another version? `appliance apply` rewrites it)")
    hints = get_type_hints(cls)
    values = {}
    for f in declared:
        key = _join(path, f.name)
        if f.name not in data:
            raise SettingsError(f"{key}: missing")
        values[f.name] = _value(hints[f.name], data[f.name], key)
    return cls(**values)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _value(kind: Any, value: Any, key: str) -> Any:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        (kind,) = [o for o in options if o is not type(None)]
        return _value(kind, value, key)
    if kind is PluginSettings:
        return _plugin_sections(value, key)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _build(kind, value, key)
    if origin is tuple:
        if not isinstance(value, list):
            raise SettingsError(f"{key}: must be a list, not {value!r}")
        (item,) = get_args(kind)[:1]
        return tuple(_value(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"{key}: must be an object, not {value!r}")
        _, item = get_args(kind)
        return {str(k): _value(item, v, f"{key}.{k}") for k, v in value.items()}
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:  # a whole number stays one, so the file reads as it was written
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str)
    else:  # a type this module does not declare: a bug here, not in the file
        raise TypeError(f"{key}: no loader for {kind!r}")
    if not ok:
        raise SettingsError(f"{key}: must be {kind.__name__}, not {value!r}")
    return value
