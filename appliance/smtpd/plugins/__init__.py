"""Plugins: one module per plugin, named as in SME Server's qpsmtpd.

Each module defines `Plugin`, a subclass of `BasePlugin`. Which plugins run, and in which
order, for which peer, is the table in `appliance.smtpd.peers`. A plugin gets the
daemon's typed settings (`appliance.smtpd.settings`), already checked against the
schema: its own section is `settings.plugin_settings.NAME`. `__init__` only precompiles
(patterns, networks); the per-message path does no config parsing. Shared services (the
DNS resolver, the state directory) are on `self.ctx`.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from pathlib import Path

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
    module = importlib.import_module(f"{__name__}.{name}")
    plugin = module.Plugin(settings, ctx)
    if not isinstance(plugin, BasePlugin):
        raise PluginError(f"plugin {name!r} does not subclass BasePlugin")
    return plugin
