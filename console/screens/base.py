"""What every console screen shares: a typed handle on the console app.

Textual types `self.app` as a plain `App`, which has no `session` or `system`; screens
reach the console's state through `self.console`, typed as `ConsoleApp` and checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from console.app import ConsoleApp


class ConsoleScreen(Screen[None]):
    """A screen of the console menu."""

    @property
    def console(self) -> ConsoleApp:
        """The running console app: its session (appliance.toml) and system."""
        from console.app import ConsoleApp  # here, not on top: console.app imports the screens

        app = self.app
        if not isinstance(app, ConsoleApp):
            raise TypeError(f"{type(self).__name__} runs inside ConsoleApp, not {type(app)}")
        return app
