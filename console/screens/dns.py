"""3. DNS forwarder: Unbound does full recursion, or forwards to the resolvers listed."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Static

from appliance.services.network.interfaces import forwarder_warning
from console.screens.form import EditScreen, field_id

FORWARDERS = "network.dns_forwarders"


class DNSScreen(EditScreen):
    TITLE_TEXT = "DNS forwarder"
    INTRO = ("Unbound resolves every name the appliance looks up. Leave the forwarders "
             "empty for full recursion (the default), or list resolvers to forward to.")

    def fields(self) -> Iterable[tuple[str, str, bool, str]]:
        return ((FORWARDERS, "Forwarders", True, "empty: full recursion"),
                ("network.dnssec", "DNSSEC validation", False, "yes or no"))

    def compose_extra(self) -> ComposeResult:
        yield Static("", id="forwarder-warning", classes="warning", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Use full recursion", id="full-recursion")
            yield Button("Review & apply", id="review", variant="primary")

    def on_mount(self) -> None:
        super().on_mount()
        self.check_forwarders()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == field_id(FORWARDERS):
            self.check_forwarders()

    def check_forwarders(self) -> None:
        typed = self.query_one("#" + field_id(FORWARDERS), Input).value
        warning = forwarder_warning(typed.replace(",", " ").split(),
                                    self.console.session.config)
        self.query_one("#forwarder-warning", Static).update(
            f"⚠ {warning}" if warning else "")
        self.query_one("#full-recursion", Button).display = bool(warning)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "full-recursion":
            self.query_one("#" + field_id(FORWARDERS), Input).value = ""
        elif event.button.id == "review":
            self.action_review()
