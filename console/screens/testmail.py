"""7. Send a test message through port 25 and show the SMTP transcript."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Header, Input, Label, Log, Static

from appliance.commands.testmail import TestResult
from console.screens.base import ConsoleScreen


class TestMailScreen(ConsoleScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    AUTO_FOCUS = "Input"  # typing goes into the first field at once

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="row"):
            yield Label("Send to", classes="label")
            yield Input(id="to", placeholder="user@example.com, then Enter")
        with Horizontal(classes="buttons"):
            yield Button("Send", id="send", variant="primary")
        yield Static("", id="send-result", markup=False)
        yield Log(id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Send a test message"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.start()

    def start(self) -> None:
        to = self.query_one("#to", Input).value.strip()
        if "@" not in to or any(c.isspace() for c in to):
            self.query_one("#send-result", Static).update("✗ type an address: user@domain")
            return
        self.query_one("#send-result", Static).update(f"sending to {to}...")
        self.query_one("#transcript", Log).clear()
        self.send(to)

    @work(thread=True, exclusive=True)
    def send(self, to: str) -> None:
        console = self.console
        result = console.system.send_test(console.session.config, to)
        console.call_from_thread(self.show, to, result)

    def show(self, to: str, result: TestResult) -> None:
        self.query_one("#transcript", Log).write_lines(result.transcript)
        self.query_one("#send-result", Static).update(
            f"✓ accepted for {to} ({result.message_id})" if result.ok
            else f"✗ not sent: {result.error or 'refused'}")
