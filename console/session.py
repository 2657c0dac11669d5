"""What the console edits: appliance.toml, through the schema and the apply path.

Screens stage edits with `stage()`, which validates the whole document as it would be
written and says which field is wrong; `preview()` is the dry run (the generated files'
diff) and `apply()` the one commit, which writes the toml only once every service
accepted the new configuration.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from appliance import paths
from appliance.apply import Plan, commit
from appliance.config import Config, ConfigError, load, parse
from appliance.config.edit import get_value, set_value

Committer = Callable[..., Plan]  # appliance.apply.commit's signature


class FieldError(Exception):
    """An edit was refused; `key` is the dotted setting it concerns (or None)."""

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(message)


@dataclass
class Session:
    path: Path = field(default_factory=lambda: paths.CONFIG)
    committer: Committer = commit
    config: Config = field(init=False)
    staged: bool = False  # edits made here and not yet applied

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read appliance.toml again (discarding staged edits)."""
        self.config = load(self.path)
        self.staged = False

    def get(self, dotted: str) -> Any:
        return get_value(self.config, dotted)

    def stage(self, edits: Mapping[str, list[str] | str]) -> None:
        """Set these settings ({"network.mtu": "1400", "network.dns_forwarders": [...]});
        all or none. FieldError names the first refused setting."""
        candidate = Config(data={}, document=copy.deepcopy(self.config.document))
        for dotted, raw in edits.items():
            try:
                set_value(candidate, dotted, [raw] if isinstance(raw, str) else list(raw))
            except ConfigError as e:
                raise FieldError(dotted, e.reason) from None
        try:
            validated = parse(tomlkit.dumps(candidate.document), self.path)
        except ConfigError as e:
            # by its field, the reason is enough; otherwise say where in the file
            raise FieldError(e.key, e.reason if e.key else str(e)) from None
        validated.source = self.config.source  # still the file as read from disk
        self.config = validated
        self.staged = True

    def preview(self) -> Plan:
        """What applying would change: the generated files' unified diff."""
        return self.committer(self.config, dry_run=True)

    def apply(self) -> Plan:
        """Check, apply and write appliance.toml; ConfigError leaves everything as it was."""
        plan = self.committer(self.config)
        self.reload()  # the file as now written
        return plan
