"""Plugins: one module per plugin, named as in SME Server's qpsmtpd.

Each module defines `Plugin`, a subclass of `BasePlugin`. The toml's `smtpd.plugins`
list names them in run order. A plugin reads and checks its settings once, in
`__init__`; the per-message path does no config parsing.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

from appliance.smtpd.hooks import HOOKS


class PluginError(Exception):
    """A plugin cannot be loaded with these settings."""


class BasePlugin:
    name = "base"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.log = logging.getLogger(f"appliance.smtpd.{self.name}")

    def hooks(self) -> list[str]:
        return [h for h in HOOKS if callable(getattr(self, f"hook_{h}", None))]


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str, settings: dict[str, Any]) -> BasePlugin:
    if name not in available():
        raise PluginError(f"unknown plugin {name!r}; available: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{name}")
    plugin = module.Plugin(settings)
    if not isinstance(plugin, BasePlugin):
        raise PluginError(f"plugin {name!r} does not subclass BasePlugin")
    return plugin
