"""The plugin pipeline: runs a hook through the plugins in order, first verdict wins.

A plugin that raises never lets mail through: its hook yields DENYSOFT (451) and the
traceback is logged under the plugin's logger.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.smtpd import replies
from appliance.smtpd.hooks import HOOKS
from appliance.smtpd.plugins import BasePlugin, load
from appliance.smtpd.results import DECLINED, Result, Verdict

log = logging.getLogger("appliance.smtpd.pipeline")

HookFn = Callable[..., Awaitable[Result | None]]


class Pipeline:
    def __init__(self, plugins: list[BasePlugin]) -> None:
        self.plugins = plugins
        # Resolve hook methods once: the per-message path only walks short lists.
        self._chains: dict[str, list[tuple[str, HookFn]]] = {
            hook: [
                (p.name, getattr(p, f"hook_{hook}"))
                for p in plugins
                if hook in p.hooks()
            ]
            for hook in HOOKS
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Pipeline:
        """Load every plugin named in settings["plugins"]; PluginError if any is bad."""
        return cls([load(name, settings) for name in settings["plugins"]])

    async def run(self, hook: str, *args: Any) -> Result:
        for name, fn in self._chains[hook]:
            try:
                result = await fn(*args)
            except Exception:
                logging.getLogger(f"appliance.smtpd.{name}").exception(
                    "plugin %s crashed in hook_%s", name, hook
                )
                return Result(Verdict.DENYSOFT, replies.PLUGIN_FAILED, name)
            if result is None or result.verdict is Verdict.DECLINED:
                continue
            return Result(result.verdict, result.reply, name)
        return DECLINED
