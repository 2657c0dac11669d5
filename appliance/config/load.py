"""Read, validate and write appliance.toml.

`load()` returns a `Config`: the tomlkit document (kept for editing with the user's
comments and layout intact) plus a plain, fully defaulted dict that renderers read.
Anything wrong raises one `ConfigError` naming the file, line, key, value and what is
allowed; nothing is half-applied.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from appliance.config import plugin_rules
from appliance.config.addresses import addresses
from appliance.config.schema import (
    ACCOUNT_COLLECTIONS,
    COLLECTIONS,
    KEY_HISTORY,
    PLUGIN_SECTIONS,
    RESERVED_NAMES,
    SECTIONS,
    Collection,
    Key,
    Section,
)


class ConfigError(Exception):
    """A configuration problem, located as precisely as we can."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key: str | None = None,
        value: Any = None,
    ) -> None:
        self.reason = reason
        self.file = str(file) if file else None
        self.line = line
        self.key = key
        self.value = value
        super().__init__(str(self))

    def __str__(self) -> str:
        if not (self.file or self.line or self.key):
            return self.reason  # not about the file (a missing tty, an unknown queue id)
        where = self.file or "appliance.toml"
        if self.line:
            where += f":{self.line}"
        what = ""
        if self.key:
            what = f" {self.key}"
            if self.value is not None:
                what += f" = {self.value!r}"
            what += ":"
        return f"{where}:{what} {self.reason}"


@dataclass
class Config:
    """A validated configuration."""

    data: dict[str, Any]  # every section with defaults filled in; plain Python values
    document: tomlkit.TOMLDocument
    path: Path | None = None
    # the file's text when load() read it: a commit refuses to overwrite a file that
    # changed since (another edit in between would be lost)
    source: str | None = None

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def fqdn(self) -> str:
        return f"{self.data['system']['hostname']}.{self.data['system']['domain']}"

    @property
    def local_domains(self) -> list[str]:
        """Every domain we accept mail for: delivered here or to its mail_server."""
        primary = self.data["system"]["domain"]
        return [primary] + sorted(d for d in self.data["domains"] if d != primary)

    @property
    def delegated_domains(self) -> dict[str, str]:
        """Domains whose mail goes on to another server (SME MailServer): domain -> server."""
        every = self.data["delivery"]["delegate_mail_server"]
        out = {}
        for domain in self.local_domains:
            entry = self.data["domains"].get(domain)
            own = entry["mail_server"] if entry and domain != self.data["system"]["domain"] \
                else ""
            if own or every:
                out[domain] = own or every
        return out

    @property
    def admin(self) -> str | None:
        """The user who receives postmaster@, abuse@ and dmarc-feedback@ (SME admin):
        system.admin, which `appliance user add` records. A file that has users but does
        not set it (written by hand) means the first user in the file, never one that
        sorts first, so adding a user moves nothing."""
        return self.data["system"]["admin"] or next(iter(self.data["users"]), None)

    @property
    def mailbox_domains(self) -> list[str]:
        """Domains delivered to mailboxes here."""
        return [d for d in self.local_domains if d not in self.delegated_domains]


def _plain(value: Any) -> Any:
    """tomlkit items -> plain Python values."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Best-effort line number of `key` inside `[table]` (or of the table header)."""
    current = ""
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = ".".join(p.strip().strip('"') for p in m.group(1).split("."))
            if key is None and current == table:
                return number
            continue
        if key is not None and current == table and re.match(
            rf'^\s*"?{re.escape(key)}"?\s*=', line
        ):
            return number
    return None


def _control_characters(value: str, multiline: bool) -> str | None:
    """What is wrong with control characters in a text value, or None.

    Every text setting ends up in a protocol line or a generated file, where CR, LF or
    NUL would start a line of the attacker's (a greeting of "hi\\r\\n250 evil"); only
    a multi-line text (a bounce text, a disclaimer) may hold line feeds."""
    for ch in value:
        if ch == "\n" and multiline:
            continue
        if unicodedata.category(ch) == "Cc":
            allowed = ("line feeds are the only control characters allowed" if multiline
                       else "must be one line without control characters")
            return f"holds the control character U+{ord(ch):04X}; {allowed}"
    return None


def check_value(key: Key, value: Any) -> str | None:
    """What is wrong with VALUE for KEY (its type, choices, bounds and check), or None."""
    return _check_value(key, value)


def _check_value(key: Key, value: Any) -> str | None:
    if key.kind is bool:
        if not isinstance(value, bool):
            return "must be " + key.describe_allowed()
    elif key.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be " + key.describe_allowed()
        if (key.minimum is not None and value < key.minimum) or (
            key.maximum is not None and value > key.maximum
        ):
            return "must be " + key.describe_allowed()
    elif key.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be " + key.describe_allowed()
        if (key.minimum is not None and value < key.minimum) or (
            key.maximum is not None and value > key.maximum
        ):
            return "must be " + key.describe_allowed()
    elif key.kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be " + key.describe_allowed()
        for item in value:
            if problem := _control_characters(item, multiline=False):
                return f"{item!r}: {problem}"
    elif key.kind is str:
        if not isinstance(value, str):
            return "must be " + key.describe_allowed()
        if problem := _control_characters(value, key.multiline):
            return problem
    if key.choices and value not in key.choices:
        return "must be " + key.describe_allowed()
    if key.check:
        problem = key.check(value)
        if problem:
            return f"{problem}; must be {key.describe_allowed()}"
    return None


class _Validator:
    def __init__(self, text: str, file: str | None) -> None:
        self.text = text
        self.file = file

    def fail(self, reason: str, table: str, key: str | None = None, value: Any = None) -> None:
        dotted = f"{table}.{key}" if key else table
        raise ConfigError(
            reason, file=self.file, line=_line_of(self.text, table, key), key=dotted,
            value=value,
        )

    def section(self, spec: Section, given: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in given.items():
            if isinstance(value, dict) and spec.key(name) is None:
                continue  # a sub-table such as [smtpd.smtp]; validated on its own
            key = spec.key(name)
            if key is None:
                self.fail(_unknown_key(spec, name), spec.path, name, value)
                raise AssertionError  # for type checkers: fail() raises
            problem = _check_value(key, value)
            if problem:  # a password is not repeated: the error goes to logs and status
                self.fail(problem, spec.path, name, None if key.secret else value)
            out[name] = float(value) if key.kind is float else value
        for key in spec.keys:
            out.setdefault(key.name, _copy(key.default))
        return out

    def collection(self, spec: Collection, given: dict[str, Any]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for entry, fields in given.items():
            table = f"{spec.path}.{entry}"
            if not spec.name_pattern.match(entry):
                self.fail(f"bad name; must be {spec.name_allowed}", table)
            if not isinstance(fields, dict):
                self.fail(f"must be a table [{table}]", spec.path, entry, fields)
            sub = Section(table, spec.doc, spec.keys)
            out[entry] = self.section(sub, fields)
        return out


def _unknown_key(spec: Section, name: str) -> str:
    """Why NAME is refused in SPEC: a key an older format had says what became of it."""
    dotted = f"{spec.path}.{name}"
    for row in KEY_HISTORY:
        if row.old == dotted:
            if row.new is None:
                return f"{dotted} was removed in volume format {row.format}; delete it"
            return (f"{dotted} was renamed {row.new} in volume format {row.format}; "
                    "write the new name")
    return f"unknown key; [{spec.path}] knows: " + ", ".join(k.name for k in spec.keys)


def reserved_name_problem(table: str, name: str) -> str | None:
    """Why a new entry `name` of `table` (users, groups, pseudonyms) is refused, or None:
    it would take over a role address or a system account's mail."""
    local = name.partition("@")[0]
    if table in ACCOUNT_COLLECTIONS and local in RESERVED_NAMES:
        return (f"{local!r} is reserved (a role address such as postmaster@, or a system "
                "account of this server); choose another name. postmaster@, abuse@, "
                "hostmaster@, webmaster@ and admin@ go to system.admin")
    return None


def reserved_name_warnings(data: dict[str, Any]) -> list[str]:
    """Entries of a loaded file that have a reserved name. Only new ones are refused
    (accounts.check_name): a volume made before a name was reserved must still load
    after an upgrade, its entry keeping the address."""
    return [f"{table}.{name}: {reserved_name_problem(table, name)}; it keeps working, "
            "but rename it" for table in ACCOUNT_COLLECTIONS for name in data[table]
            if reserved_name_problem(table, name)]


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def validate(document: tomlkit.TOMLDocument, text: str = "", file: str | None = None) -> dict:
    """Check a parsed document against the schema; return the defaulted plain dict."""
    plain: dict[str, Any] = _plain(document)
    v = _Validator(text or tomlkit.dumps(document), file)
    known_tops = {s.path.split(".")[0] for s in SECTIONS} | {c.path for c in COLLECTIONS}
    for top in plain:
        if top not in known_tops:
            v.fail(
                "unknown section; known: " + ", ".join(sorted(known_tops)), top,
            )
    data: dict[str, Any] = {}
    for spec in SECTIONS:
        given = _lookup(plain, spec.path)
        if given is None:
            given = {}
        if not isinstance(given, dict):
            v.fail("must be a table", spec.path)
        values = v.section(spec, given)
        # check sub-tables of this section are known sections
        for name, sub in given.items():
            if isinstance(sub, dict) and not any(
                s.path == f"{spec.path}.{name}" for s in SECTIONS
            ):
                v.fail("unknown table", f"{spec.path}.{name}")
        parent = data
        parts = spec.path.split(".")
        for part in parts[:-1]:
            parent = parent.setdefault(part, {})
        parent.setdefault(parts[-1], {}).update(values)
    for coll in COLLECTIONS:
        given = plain.get(coll.path, {})
        if not isinstance(given, dict):
            v.fail("must be a table", coll.path)
        data[coll.path] = v.collection(coll, given)
    _check_references(v, data)
    _check_plugins(v, data, document)
    return data


def _check_references(v: _Validator, data: dict[str, Any]) -> None:
    """Groups and pseudonyms must point at accounts that exist."""
    users, groups = data["users"], data["groups"]
    for name, group in groups.items():
        if name in users:
            v.fail("a user has the same name", f"groups.{name}")
        for member in group["members"]:
            if member not in users:
                v.fail("no such user; must be one of [users.*]", f"groups.{name}", "members",
                       member)
    for name, group in groups.items():
        for user in group["exclude_users"]:
            if user not in users:
                v.fail("no such user", f"groups.{name}", "exclude_users", user)
        for other in group["exclude_groups"]:
            if other not in groups:
                v.fail("no such group", f"groups.{name}", "exclude_groups", other)
    admin = data["system"]["admin"]
    if admin and admin not in users:
        v.fail("no such user; must be one of [users.*]", "system", "admin", admin)
    bounce_to = data["queue"]["double_bounce_to"]
    if bounce_to not in ("postmaster", "devnull") and bounce_to not in users:
        v.fail("no such user", "queue", "double_bounce_to", bounce_to)
    unknown = data["delivery"]["unknown_user"]
    if unknown != "returntosender" and unknown not in users and unknown not in groups:
        v.fail("no such user or group", "delivery", "unknown_user", unknown)
    fetch = data["fetchmail"]
    if fetch["enabled"] and fetch["method"] != "standard":
        if not fetch["secondary_mail_server"]:
            v.fail(f"method {fetch['method']} needs the secondary mail server", "fetchmail",
                   "secondary_mail_server", "")
        if fetch["method"] == "multidrop" and not fetch["account"]:
            v.fail("multidrop needs the POP3 account", "fetchmail", "account", "")
    for name, pseudonym in data["pseudonyms"].items():
        account = pseudonym["account"]
        if account not in users and account not in groups:
            v.fail("no such user or group", f"pseudonyms.{name}", "account", account)
        local, at, domain = name.partition("@")
        ours = [data["system"]["domain"], *data["domains"]]
        if at and domain not in ours:
            v.fail("not one of our domains (system.domain, [domains.*])",
                   f"pseudonyms.{name}")
        if (not at or domain in ours) and (local in users or local in groups):
            # it would take over that account's mail (and postmaster@ with it)
            v.fail("already an account's own address", f"pseudonyms.{name}")


def _check_plugins(v: _Validator, data: dict[str, Any], document: tomlkit.TOMLDocument
                   ) -> None:
    """The plugins' own rules (appliance.config.plugin_rules), for each plugin that runs:
    a plugin that is off may hold a value it would refuse, as it always could."""

    def mailboxes() -> plugin_rules.Mailboxes:
        config = Config(data=data, document=document)
        return plugin_rules.Mailboxes(
            primary_domain=data["system"]["domain"],
            local_domains=frozenset(d.lower() for d in config.local_domains),
            delegated_domains=frozenset(d.lower() for d in config.delegated_domains),
            addresses=frozenset(a.lower() for a in addresses(config)),
        )

    for spec in PLUGIN_SECTIONS:
        name = spec.path.split(".", 1)[1]
        values = data["smtpd"][name]
        if plugin_rules.runs(values) and (problem := plugin_rules.problem(name, values,
                                                                          mailboxes)):
            v.fail(problem.reason, spec.path, problem.key, problem.value)


def parse(text: str, file: str | os.PathLike[str] | None = None) -> Config:
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise ConfigError(f"not valid TOML: {e}", file=file, line=e.line) from None
    data = validate(document, text, str(file) if file else None)
    return Config(data=data, document=document, path=Path(file) if file else None)


def load(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e}", file=path) from None
    config = parse(text, path)
    config.source = text
    return config


def save(document: tomlkit.TOMLDocument, path: str | os.PathLike[str]) -> Config:
    """Validate `document` and write it atomically; the old file stays if it is bad."""
    path = Path(path)
    text = tomlkit.dumps(document)
    config = parse(text, path)
    write_atomic(path, text, mode=0o600)
    return config


def write_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
