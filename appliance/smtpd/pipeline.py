"""The plugin pipeline: runs a hook through the plugins in order, first verdict wins.

A plugin that raises never lets mail through: its hook yields DENYSOFT (451) and the
traceback is logged under the plugin's logger. A NAUGHTY verdict marks the connection
(the first mark stands) and the hook goes on; the naughty plugin refuses later. Time
spent in each plugin is added up on the connection for the terse log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from appliance.smtpd import peers, replies
from appliance.smtpd.dns import Resolver
from appliance.smtpd.hooks import HOOKS, Connection
from appliance.smtpd.plugins import BasePlugin, Context, load
from appliance.smtpd.results import DECLINED, Result, Verdict
from appliance.smtpd.settings import Settings

log = logging.getLogger("appliance.smtpd.pipeline")

HookFn = Callable[..., Awaitable[Result | None]]


class Pipeline:
    """One ordered chain of plugins."""

    def __init__(self, plugins: list[BasePlugin]) -> None:
        self.plugins = plugins
        self.names = [p.name for p in plugins]
        self.has_naughty = "naughty" in self.names
        # Resolve hook methods once: the per-message path only walks short lists.
        self._chains: dict[str, list[tuple[str, HookFn]]] = {
            hook: [
                (p.name, getattr(p, f"hook_{hook}"))
                for p in plugins
                if hook in p.hooks()
            ]
            for hook in HOOKS
        }

    def handles(self, hook: str) -> bool:
        return bool(self._chains[hook])

    async def run(self, hook: str, conn: Connection, *args: Any) -> Result:
        for name, fn in self._chains[hook]:
            t0 = time.perf_counter()
            try:
                result = await fn(conn, *args)
            except Exception:
                logging.getLogger(f"appliance.smtpd.{name}").exception(
                    "plugin %s crashed in hook_%s", name, hook
                )
                return Result(Verdict.DENYSOFT, replies.PLUGIN_FAILED, name)
            finally:
                conn.timings[name] = conn.timings.get(name, 0.0) + time.perf_counter() - t0
            if result is None or result.verdict is Verdict.DECLINED:
                log.debug("%s %s: declined", name, hook)
                continue
            log.debug("%s %s: %s %s", name, hook, result.verdict.name, result.reply)
            if result.verdict is Verdict.NAUGHTY:
                if not self.has_naughty:
                    return Result(Verdict.DENY, result.reply, name)
                if conn.naughty is None:
                    conn.naughty = (result.reply, name)
                    conn.karma -= 1
                continue
            return Result(result.verdict, result.reply, name)
        return DECLINED


class Pipelines:
    """A daemon's chains, one per peer class, sharing one instance of each plugin."""

    def __init__(self, daemon: str, settings: Settings, ctx: Context) -> None:
        self.local = peers.LocalNetworks(settings.local_networks)
        names = {p: peers.chain(daemon, p, settings.plugin_settings) for p in peers.PEERS}
        instances: dict[str, BasePlugin] = {}
        for chain in names.values():
            for name in chain:
                if name not in instances:
                    instances[name] = load(name, settings, ctx)
        self.instances = instances
        self.ctx = ctx  # the shared resolver, also for the handler's client name lookup
        self.by_peer = {p: Pipeline([instances[n] for n in chain]) for p, chain in names.items()}

    def for_peer(self, peer: str) -> Pipeline:
        return self.by_peer[peer]

    def peer_of(self, ip: str) -> str:
        return peers.peer_of(ip, self.local)

    def close(self) -> None:
        """Release what plugins hold open (their SQLite stores) at shutdown."""
        for plugin in self.instances.values():
            closer = getattr(plugin, "close", None)
            if closer is not None:
                closer()


def context(settings: Settings) -> Context:
    return Context(
        resolver=Resolver(list(settings.dns.nameservers), float(settings.dns.timeout)),
        state_dir=Path(settings.state_dir),
        hostname=settings.hostname,
    )
