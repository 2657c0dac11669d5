"""The console menu: `docker compose exec -it appliance console` (or `make console`).

Keyboard first: digits open screens, Esc goes back, ctrl+s reviews an edit, q quits,
ctrl+k opens the command palette; the footer shows the keys of each screen. Made to
fit 80x24.
"""

from __future__ import annotations

import sys
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from appliance.config import ConfigError
from console.screens.apply import ApplyScreen
from console.screens.bans import BansScreen
from console.screens.base import ConsoleScreen
from console.screens.delivery import DeliveryScreen
from console.screens.dns import DNSScreen
from console.screens.mtu import MTUScreen
from console.screens.networking import NetworkingScreen
from console.screens.status import StatusScreen
from console.screens.testmail import TestMailScreen
from console.session import Session
from console.system import System

MENU = (
    ("status", "1", "Status", "services, queue, recent mail, disk, certificate", StatusScreen),
    ("networking", "2", "Networking", "interfaces, addresses, gateway, MTU", NetworkingScreen),
    ("dns", "3", "DNS forwarder", "full recursion or forwarders (Unbound)", DNSScreen),
    ("mtu", "4", "MTU", "interface MTU, TCP MSS clamp, path MTU probe", MTUScreen),
    ("delivery", "5", "Mail delivery", "smarthost, internal server, HELO name",
     DeliveryScreen),
    ("apply", "6", "Apply", "review the changes and apply them", ApplyScreen),
    ("testmail", "7", "Send a test message", "see the SMTP transcript", TestMailScreen),
    ("bans", "8", "Bans", "addresses banned for failed logins; lift a ban", BansScreen),
)


class MainMenu(ConsoleScreen):
    warned = False  # about quitting with edits not applied
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_menu", "Quit"),
        *(Binding(key, f"app.open('{name}')", label, show=False)
          for name, key, label, _doc, _cls in MENU),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="menu-title", markup=False)
        yield OptionList(*[Option(f"{key}  {label:<20} {doc}", id=name)
                           for name, key, label, doc, _cls in MENU], id="menu")
        yield Static("", id="pending", markup=False)
        yield Footer()

    def on_screen_resume(self) -> None:
        self.warned = False
        session = self.console.session
        self.query_one("#menu-title", Static).update(
            f"Mail appliance {session.config.fqdn}: choose with the arrows and Enter, "
            "or a digit")
        self.query_one("#pending", Static).update(
            "Edits waiting to be applied: press 6." if session.staged else "")

    def action_quit_menu(self) -> None:
        """Quit; with edits not applied yet, only when q comes twice."""
        session = self.console.session
        if session.staged and not self.warned:
            self.warned = True
            self.query_one("#pending", Static).update(
                "Edits waiting to be applied: q again quits without them, 6 applies them.")
            return
        self.app.exit()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.console.action_open(event.option.id)


class ConsoleApp(App[None]):
    TITLE = "Mail appliance console"
    CSS_PATH = "console.tcss"  # beside this file; packaged as package data (pyproject)
    # `docker compose exec` holds ctrl+p as the first key of its detach sequence (the
    # palette needed it twice); docker and terminals leave ctrl+k alone. The footer
    # shows it as ^k.
    COMMAND_PALETTE_BINDING = "ctrl+k"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False)]

    def __init__(self, session: Session | None = None, system: System | None = None) -> None:
        super().__init__()
        self.session = session or Session()
        self.system = system or System()

    def on_mount(self) -> None:
        self.push_screen(MainMenu())

    def action_open(self, name: str) -> None:
        for entry, _key, _label, _doc, cls in MENU:
            if entry == name:
                if isinstance(self.screen, ApplyScreen) and name == "apply":
                    return
                if not isinstance(self.screen, MainMenu):
                    self.pop_screen()  # one screen deep: Esc always returns to the menu
                self.push_screen(cls())
                return


def main() -> int:
    try:
        session = Session()
    except ConfigError as e:
        print(f"console: {e}\nFix appliance.toml (or restore a backup), then try again.",
              file=sys.stderr)
        return 78
    ConsoleApp(session=session).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
