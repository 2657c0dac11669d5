"""4. MTU: the interface's MTU and the SMTP listeners' MSS clamp; a tracepath probe."""

from __future__ import annotations

from collections.abc import Iterable

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Log, Static

from appliance.config.schema import MTU_MAX, MTU_MIN
from appliance.services.network.interfaces import Probe
from console.screens.form import EditScreen, field_id

MTU = "network.mtu"


class MTUScreen(EditScreen):
    TITLE_TEXT = "MTU"
    INTRO = ("A smaller MTU (1492 behind PPPoE) stops large packets from vanishing. "
             "0: the MTU the container was given.")

    def fields(self) -> Iterable[tuple[str, str, bool, str]]:
        return ((MTU, "MTU", False, f"0 or {MTU_MIN}-{MTU_MAX}"),)

    def compose_extra(self) -> ComposeResult:
        yield Static("", id="mtu-now", markup=False)
        with Horizontal(classes="row"):
            yield Label("Probe path to", classes="label")
            yield Input(id="probe-host", placeholder="host or address")
        with Horizontal(classes="buttons"):
            yield Button("Probe", id="probe")
            yield Button("Use probed MTU", id="use-pmtu", disabled=True)
            yield Button("Review & apply", id="review", variant="primary")
        yield Static("", id="probe-result", markup=False)
        yield Log(id="probe-log", max_lines=200)

    def on_mount(self) -> None:
        super().on_mount()
        self.pmtu: int | None = None
        self.iface = self.console.session.get("network.interface")
        # read once: `ip` is not run on the UI thread at every keystroke
        self.iface_mtu = self.console.system.interface_mtu(self.iface)
        self.describe()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == field_id(MTU):
            self.describe()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "probe-host":
            self.start_probe()

    def describe(self) -> None:
        typed = self.query_one("#" + field_id(MTU), Input).value.strip()
        if typed in ("", "0"):
            clamp = "SMTP listeners' MSS: not clamped"
        elif typed.isdigit() and MTU_MIN <= int(typed) <= MTU_MAX:
            clamp = f"SMTP listeners' MSS: {int(typed) - 40}"
        else:
            clamp = f"MTU must be 0 or {MTU_MIN}-{MTU_MAX}"
        now = self.iface_mtu if self.iface_mtu is not None else "unknown"
        self.query_one("#mtu-now", Static).update(f"{self.iface} now has MTU {now}. {clamp}.")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "probe":
            self.start_probe()
        elif event.button.id == "use-pmtu" and self.pmtu:
            self.query_one("#" + field_id(MTU), Input).value = str(self.pmtu)
        elif event.button.id == "review":
            self.action_review()

    def start_probe(self) -> None:
        host = self.query_one("#probe-host", Input).value.strip()
        if not host:
            self.query_one("#probe-result", Static).update("✗ type a host to probe")
            return
        self.query_one("#probe-result", Static).update(f"probing {host} with tracepath...")
        self.query_one("#probe-log", Log).clear()
        self.probe(host)

    @work(thread=True, exclusive=True)
    def probe(self, host: str) -> None:
        result = self.console.system.probe(host)
        self.app.call_from_thread(self.show_probe, result)

    def show_probe(self, result: Probe) -> None:
        self.pmtu = result.pmtu
        self.query_one("#probe-log", Log).write_lines(result.transcript.splitlines())
        said = (f"smallest path MTU to {result.host}: {result.pmtu}" if result.pmtu
                else f"no path MTU found for {result.host}")
        if result.error:
            said += f" ({result.error})"
        self.query_one("#probe-result", Static).update(said)
        self.query_one("#use-pmtu", Button).disabled = not result.pmtu
