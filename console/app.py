"""The console menu: `docker compose exec -it appliance console` (or `make console`).

Keyboard first: digits open screens, Esc goes back, ctrl+s reviews an edit, q quits,
ctrl+k opens the command palette; the footer shows the keys of each screen. Made to
fit 80x24.
"""

from __future__ import annotations

import sys

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from appliance.config import ConfigError
from console.screens.apply import ApplyScreen
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
)

CSS = """
.row { height: 1; margin: 0 1; }
.label { width: 22; }
Input { border: none; height: 1; padding: 0 1; width: 1fr; background: $boost; }
Input:focus { border: none; background: $accent 30%; }
Button { border: none; height: 1; min-width: 8; margin: 0 1 0 0; }
.buttons { height: 1; margin: 1 1 0 1; }
.error { color: $error; margin: 0 1 0 24; height: auto; }
.warning { color: $warning; margin: 0 1; height: auto; }
.intro { margin: 0 1 1 1; color: $text-muted; }
.heading { margin: 0 1; text-style: bold; }
#menu { height: auto; max-height: 16; margin: 1 2; }
#menu-title { margin: 1 2 0 2; text-style: bold; }
#pending { margin: 0 2; color: $warning; }
DataTable { height: auto; max-height: 12; }
Log { height: 1fr; min-height: 4; width: 1fr; border: round $panel; }
#mtu-now, #probe-result, #send-result, #apply-summary, #apply-result, #routes,
#local-networks, #summary, #recent, #net-error { margin: 0 1; }
"""


class MainMenu(Screen):
    warned = False  # about quitting with edits not applied
    BINDINGS = [Binding("q", "quit_menu", "Quit")] + [
        Binding(key, f"app.open('{name}')", label, show=False)
        for name, key, label, _doc, _cls in MENU
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
        session = self.app.session  # type: ignore[attr-defined]
        self.query_one("#menu-title", Static).update(
            f"Mail appliance {session.config.fqdn}: choose with the arrows and Enter, "
            "or a digit")
        self.query_one("#pending", Static).update(
            "Edits waiting to be applied: press 6." if session.staged else "")

    def action_quit_menu(self) -> None:
        """Quit; with edits not applied yet, only when q comes twice."""
        session = self.app.session  # type: ignore[attr-defined]
        if session.staged and not self.warned:
            self.warned = True
            self.query_one("#pending", Static).update(
                "Edits waiting to be applied: q again quits without them, 6 applies them.")
            return
        self.app.exit()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.app.action_open(event.option.id)  # type: ignore[attr-defined]


class ConsoleApp(App):
    TITLE = "Mail appliance console"
    CSS = CSS
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
