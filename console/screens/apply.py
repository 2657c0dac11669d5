"""6. Apply: the generated files' diff (dry run), then apply and say what was reloaded.

Nothing is half-applied: a service's checker refusing the new files leaves the running
configuration and appliance.toml as they were, and the error is shown here."""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Log, Static

from appliance.apply import Plan
from appliance.config import ConfigError
from console.screens.base import ConsoleScreen


class ApplyScreen(ConsoleScreen):
    BINDINGS = [
        Binding("a", "apply", "Apply"),
        Binding("d", "discard", "Discard edits"),
        Binding("escape", "back", "Back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("computing what would change...", id="apply-summary", markup=False)
        yield Static("", id="apply-warning", classes="warning", markup=False)
        yield Log(id="diff")
        yield Static("", id="apply-result", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Apply"
        self.busy = False
        self.preview()

    @work(thread=True, exclusive=True)
    def preview(self) -> None:
        self.app.call_from_thread(self.show_preview,
                                  *_attempt(self.console.session.preview))

    def show_preview(self, plan: Plan | None, error: str) -> None:
        if self.busy:  # an apply started meanwhile: its result is what counts
            return
        summary = self.query_one("#apply-summary", Static)
        if plan is None:
            summary.update(f"✗ {error}")
            return
        if plan.changed or plan.new_certificate:
            what = plan.services + (["TLS certificate"] if plan.new_certificate else [])
            summary.update("Would change: " + ", ".join(what) +
                           ". Press a to apply, Esc to go back.")
        else:
            summary.update("Nothing would change: the services run this configuration.")
        self.query_one("#apply-warning", Static).update(
            "\n".join(f"⚠ {w}" for w in plan.warnings))
        log = self.query_one("#diff", Log)
        log.clear()
        log.write_lines("".join(plan.diffs).splitlines())
        log.scroll_home(animate=False)  # the first file's diff first

    def action_apply(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.query_one("#apply-result", Static).update("applying...")
        self.run_apply()

    @work(thread=True, exclusive=True)
    def run_apply(self) -> None:
        self.app.call_from_thread(self.show_result,
                                  *_attempt(self.console.session.apply))

    def show_result(self, plan: Plan | None, error: str) -> None:
        self.busy = False
        result = self.query_one("#apply-result", Static)
        if plan is None:
            if error.startswith(UNEXPECTED):  # not a refusal: it may have stopped part way
                said = (f"✗ {error}. appliance.toml was not written; `appliance apply` "
                        "puts the services back to it.")
            else:
                hint = (" Press d to read appliance.toml again (your edits here are "
                        "dropped)." if "changed by someone else" in error else "")
                said = f"✗ not applied, nothing changed: {error}{hint}"
            result.update(said)
            result.set_class(True, "error")
            return
        result.set_class(False, "error")
        done = plan.reloaded or [f"{s}: files written" for s in plan.services]
        result.update("✓ applied. " + ("; ".join(done) if done else "Nothing changed."))
        self.query_one("#apply-summary", Static).update("Applied.")

    def action_back(self) -> None:
        if self.busy:  # the result (what was reloaded, or why not) must be seen
            self.app.notify("applying: the result comes in a moment")
            return
        self.app.pop_screen()

    def action_discard(self) -> None:
        if self.busy:
            return
        try:
            self.console.session.reload()
        except ConfigError as e:  # edited by hand and broken: say so, keep the edits
            self.query_one("#apply-result", Static).update(f"✗ {e}")
            return
        self.app.notify("edits discarded: appliance.toml as on disk")
        self.query_one("#apply-result", Static).update("")
        self.preview()


UNEXPECTED = "unexpected error, "


def _attempt(step: Callable[[], Plan]) -> tuple[Plan | None, str]:
    """A preview or an apply: its plan, or why it was refused (anything unexpected
    too: the console stays up and says it)."""
    try:
        return step(), ""
    except ConfigError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001
        return None, f"{UNEXPECTED}{type(e).__name__}: {e}"
