"""8. Bans: the addresses banned for failed logins, and lifting one (`appliance ban`)."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from appliance.security.bans import Ban, format_duration
from console.screens.base import ConsoleScreen


class BansScreen(ConsoleScreen):
    BINDINGS = [Binding("u", "unban", "Lift the ban"), Binding("r", "refresh", "Refresh"),
                Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Addresses refused on every port after failed logins (security.*). "
                     "Pick one and press u to lift its ban.", classes="intro", markup=False)
        yield DataTable(id="bans", cursor_type="row")
        yield Static("", id="bans-result", markup=False)
        yield Static("", id="accounts", classes="warning", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Bans"
        self.query_one("#bans", DataTable).add_columns("Address", "Expires in", "Why")
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        console = self.console
        try:
            bans = console.system.bans(console.session.config)
            accounts = console.system.accounts_under_attack(console.session.config)
        except Exception as e:  # noqa: BLE001 - the screen says it, the console stays
            console.call_from_thread(self.say, f"✗ the ban store could not be read: {e}")
            return
        console.call_from_thread(self.show, bans, accounts)

    def show(self, bans: list[Ban], accounts: list[tuple[str, int]]) -> None:
        table = self.query_one("#bans", DataTable)
        table.clear()
        now = time.time()
        for ban in bans:
            left = ban.left(now)
            why = ban.reason + (f" ({ban.protocol}, {ban.account})" if ban.account else "")
            # Text, not markup: the user tried is whatever a client sent
            table.add_row(Text(ban.key), "never" if left is None else format_duration(left),
                          Text(why), key=ban.key)
        if not bans:
            self.say("No address is banned.")
        self.query_one("#accounts", Static).update("\n".join(
            f"Account {a}: {n} failed logins in the last hour (its logins are slowed)"
            for a, n in accounts))

    def say(self, text: str) -> None:
        self.query_one("#bans-result", Static).update(text)

    def action_unban(self) -> None:
        table = self.query_one("#bans", DataTable)
        if not table.row_count:
            return
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        self.unban(key)

    @work(thread=True, exclusive=True)
    def unban(self, key: str) -> None:
        console = self.console
        try:
            lifted = console.system.unban(console.session.config, key)
        except Exception as e:  # noqa: BLE001
            console.call_from_thread(self.say, f"✗ {key}: {e}")
            return
        console.call_from_thread(self.say, f"✓ ban lifted: {', '.join(lifted)}" if lifted
                                 else f"{key} was no longer banned")
        console.call_from_thread(self.load)
