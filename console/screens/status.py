"""1. Status: services, queue, recent mail, disk, certificate, virus signatures; live."""

from __future__ import annotations

import re

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from appliance.status import Status, summary_lines, transaction_verdict
from console.screens.base import ConsoleScreen

REFRESH_S = 5.0


class StatusScreen(ConsoleScreen):
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static("", id="services", markup=False)
            yield Static("reading status...", id="summary", markup=False)
            yield Static("", id="problems", classes="error", markup=False)
            yield Static("Recent mail, newest first:", classes="heading")
            yield Static("", id="recent", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Status"
        self.collecting = False
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def action_refresh(self) -> None:
        if not self.collecting:  # a slow round is not joined by more of them
            self.collecting = True
            self.collect()

    @work(thread=True, exclusive=True)
    def collect(self) -> None:
        system = self.console.system
        try:
            st = system.status()
            recent = system.recent_transactions(6)[::-1]  # newest first: it stays in view
        except Exception as e:  # noqa: BLE001 - the screen says it, the console stays
            st, recent = Status(problems=[f"status could not be read: {e}"]), []
        self.app.call_from_thread(self.show, st, recent)

    def show(self, st: Status, recent: list[str]) -> None:
        self.collecting = False
        self.query_one("#services", Static).update(service_grid(st))
        lines = summary_lines(st)
        self.query_one("#summary", Static).update("\n".join(lines))
        self.query_one("#problems", Static).update(
            "" if st.healthy else "Problems: " + "; ".join(st.problems))
        self.query_one("#recent", Static).update(
            "\n".join(_short(line) for line in recent) or "no mail yet")


def service_grid(st: Status, per_line: int = 2) -> str:
    """Every service with its state and uptime, two to a line: a dozen programs fit
    80x24 with the rest of the screen (a problem's whole detail is in the Problems line)."""
    cells = [f"{svc.name:<17}{svc.state:<9}{_uptime(svc.detail):<13}" for svc in st.services]
    return "\n".join("".join(cells[i:i + per_line]).rstrip()
                     for i in range(0, len(cells), per_line))


def _uptime(detail: str) -> str:
    """supervisord's "pid 12, uptime 2 days, 1:02:03" as "2d 1:02:03"; for a service
    not running, the start of its detail (the error, or when it stopped)."""
    m = re.search(r"uptime (?:(\d+) days?, )?(\d+:\d\d:\d\d)", detail)
    if m:
        return (f"{m[1]}d " if m[1] else "") + m[2]
    return detail[:12]


def _short(line: str) -> str:
    """A terse log line cut to one screen line: time, daemon, client, from -> to, verdict
    (and the plugin that decided)."""
    parts = line.split()
    fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    when = parts[0][11:19] if parts else ""
    head = " ".join(parts[1:3])
    verdict = transaction_verdict(fields) + (f" by {fields['by']}" if "by" in fields else "")
    return (f"{when} {head} {fields.get('from', '<>').strip('<>')} -> "
            f"{fields.get('to', '-').replace('<', '').replace('>', '')} {verdict}")
