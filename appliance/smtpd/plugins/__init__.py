"""Plugins: one module per plugin, named as in SME Server's qpsmtpd.

Each module defines `Plugin`, a subclass of `BasePlugin`. Which plugins run, and in which
order, for which peer, is the table in `appliance.smtpd.peers`. A plugin gets the
daemon's typed settings (`appliance.smtpd.settings`), already checked against the
schema and, by `load`, against the plugin's own rules (`appliance.config.plugin_rules`):
its own section is `settings.plugin_settings.NAME`. `__init__` only precompiles
(patterns, networks); the per-message path does no config parsing. Shared services (the
DNS resolver, the state directory) are on `self.ctx`.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
from dataclasses import dataclass
from pathlib import Path

from appliance.config import plugin_rules
from appliance.smtpd.dns import Resolver
from appliance.smtpd.hooks import HOOKS
from appliance.smtpd.settings import PluginError as PluginError
from appliance.smtpd.settings import Settings


@dataclass
class Context:
    """What every plugin of a daemon shares."""

    resolver: Resolver
    state_dir: Path  # on the volume: karma, greylisting, DMARC records
    hostname: str = "localhost"


class BasePlugin:
    name = "base"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        self.settings = settings
        self.ctx = ctx
        self.log = logging.getLogger(f"appliance.smtpd.{self.name}")

    def hooks(self) -> list[str]:
        return [h for h in HOOKS if callable(getattr(self, f"hook_{h}", None))]


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str, settings: Settings, ctx: Context) -> BasePlugin:
    if name not in available():
        raise PluginError(f"unknown plugin {name!r}; available: {', '.join(available())}")
    _check(name, settings)
    module = importlib.import_module(f"{__name__}.{name}")
    plugin = module.Plugin(settings, ctx)
    if not isinstance(plugin, BasePlugin):
        raise PluginError(f"plugin {name!r} does not subclass BasePlugin")
    return plugin


def _check(name: str, settings: Settings) -> None:
    """The plugin's own rules (appliance.config.plugin_rules) on the settings file, as
    the config check applied them to appliance.toml: a plugin gets only checked values."""
    section = getattr(settings.plugin_settings, name, None)
    if section is None or name not in plugin_rules.RULES:
        return  # no settings (rcpt_ok), or no rule beyond each key's own check

    def mailboxes() -> plugin_rules.Mailboxes:
        return plugin_rules.Mailboxes(
            primary_domain=settings.primary_domain,
            local_domains=frozenset(d.lower() for d in settings.local_domains),
            delegated_domains=frozenset(d.lower() for d in settings.delegated_domains),
            addresses=frozenset(a.lower() for a in settings.addresses),
        )

    problem = plugin_rules.problem(name, dataclasses.asdict(section), mailboxes)
    if problem:
        raise PluginError(f"{name}: {problem.key} = {problem.value!r}: {problem.reason}")
