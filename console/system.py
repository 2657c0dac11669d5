"""What the console reads from the running system, in one place so the pilot tests can
hand the screens a system of their own (no supervisord or tracepath on a build host)."""

from __future__ import annotations

from appliance import status
from appliance.commands import testmail
from appliance.config import Config
from appliance.security.bans import Ban
from appliance.services.network import interfaces as network


class System:
    def status(self) -> status.Status:
        return status.collect()

    def recent_transactions(self, n: int = 8) -> list[str]:
        return status.recent_transactions(n)

    def interfaces(self) -> list[network.Interface]:
        return network.interfaces()

    def routes(self) -> list[network.Route]:
        return network.routes()

    def interface_mtu(self, name: str) -> int | None:
        try:
            return network.interface_mtu(name)
        except network.NetworkError:
            return None

    def probe(self, host: str) -> network.Probe:
        return network.probe_pmtu(host)

    def send_test(self, config: Config, to: str) -> testmail.TestResult:
        return testmail.send_test(config, to)

    def bans(self, config: Config) -> list[Ban]:
        from appliance.services.security import open_store

        store = open_store(config)
        try:
            return store.bans()
        finally:
            store.close()

    def accounts_under_attack(self, config: Config) -> list[tuple[str, int]]:
        from appliance.services.security import open_store

        store = open_store(config)
        try:
            return store.accounts_under_attack()
        finally:
            store.close()

    def unban(self, config: Config, key: str) -> list[str]:
        from appliance.services.security import open_store

        store = open_store(config)
        try:
            return store.remove(key)
        finally:
            store.close()
