"""2. Networking: the container's interfaces, addresses, routes and MTU (read only:
Docker gives the container its addresses; the MTU is set on the MTU screen)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from appliance.services.network.interfaces import Interface, NetworkError, Route
from console.screens.base import ConsoleScreen


class NetworkingScreen(ConsoleScreen):
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield DataTable(id="interfaces", cursor_type="row")
            yield Static("", id="routes", markup=False)
            yield Static("", id="local-networks", markup=False)
            yield Static("", id="net-error", classes="error", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Networking"
        self.query_one("#interfaces", DataTable).add_columns(
            "interface", "state", "MTU", "addresses")
        nets = self.console.session.get("network.local_networks")
        self.query_one("#local-networks", Static).update(
            "Local networks (may relay without AUTH): " + ", ".join(nets))
        self.action_refresh()

    def action_refresh(self) -> None:
        self.read()

    @work(thread=True, exclusive=True)
    def read(self) -> None:
        system = self.console.system
        try:
            found = (system.interfaces(), system.routes(), "")
        except NetworkError as e:
            found = ([], [], str(e))
        self.app.call_from_thread(self.show, *found)

    def show(self, links: list[Interface], routes: list[Route], error: str) -> None:
        table = self.query_one("#interfaces", DataTable)
        table.clear()
        for link in links:
            table.add_row(link.name, link.state, str(link.mtu), " ".join(link.addresses))
        gateways = [f"default via {r.gateway} dev {r.device}" for r in routes
                    if r.destination == "default"]
        others = [f"{r.destination} dev {r.device}" + (f" via {r.gateway}" if r.gateway else "")
                  for r in routes if r.destination != "default"]
        self.query_one("#routes", Static).update(
            "Gateway: " + ("; ".join(gateways) or "none") +
            ("\nRoutes: " + "; ".join(others) if others else ""))
        self.query_one("#net-error", Static).update(error)
