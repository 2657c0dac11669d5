"""The edit screens' common form: one row per setting, an error line under each, and
ctrl+s to review the change (dry run) before it is applied."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, Static

from appliance.config.schema import find_key
from console.screens.base import ConsoleScreen
from console.session import FieldError


def field_id(dotted: str) -> str:
    """A widget id for a setting, one per setting: a character ids cannot hold becomes
    its code between dashes (shop-a.example and shop.a-example stay apart)."""
    return "f-" + "".join(c if c.isalnum() or c == "_" else f"-{ord(c):x}-" for c in dotted)


def is_secret(dotted: str) -> bool:
    """A password setting (the schema's Key.secret): typed masked, taken as typed."""
    found = find_key(dotted)
    return found is not None and found[1].secret


def as_text(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class EditScreen(ConsoleScreen):
    """A screen of settings. Subclasses list FIELDS: (dotted key, label, is_list, hint)."""

    BINDINGS = [
        Binding("ctrl+s", "review", "Review & apply"),
        Binding("escape", "app.pop_screen", "Back"),
    ]
    TITLE_TEXT = ""
    AUTO_FOCUS = "Input"  # typing goes into the first field at once
    INTRO = ""

    def fields(self) -> Iterable[tuple[str, str, bool, str]]:
        return ()

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="form"):
            if self.INTRO:
                yield Static(self.INTRO, classes="intro")
            yield from self.compose_fields()
            yield from self.compose_extra()
        yield Footer()

    def compose_fields(self) -> ComposeResult:
        session = self.console.session
        for dotted, label, _is_list, hint in self.fields():
            with Horizontal(classes="row"):
                yield Label(label, classes="label")
                yield Input(as_text(session.get(dotted)), id=field_id(dotted),
                            password=is_secret(dotted), placeholder=hint)
            yield Static("", id=field_id(dotted) + "-error", classes="error", markup=False)

    def compose_extra(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        self.title = self.TITLE_TEXT

    def edits(self) -> dict[str, str | list[str]]:
        """The fields whose text differs from the setting's value: only those are set,
        so the toml gains no lines nobody changed."""
        session = self.console.session
        out: dict[str, str | list[str]] = {}
        for dotted, _label, is_list, _hint in self.fields():
            text = self.query_one("#" + field_id(dotted), Input).value
            if not is_secret(dotted):  # a password is taken as typed, spaces and all
                text = text.strip()
            value = text.replace(",", " ").split() if is_list else text
            if (" ".join(value) if is_list else value) != as_text(session.get(dotted)):
                out[dotted] = value
        return out

    def clear_errors(self) -> None:
        for w in self.query(".error").results(Static):
            w.update("")

    def show_error(self, err: FieldError) -> None:
        target: Static | None = None
        if err.key:
            matches = self.query("#" + field_id(err.key) + "-error")
            target = matches.first(Static) if matches else None
        if target is None:  # a setting this screen does not show
            target = self.query(".error").first(Static)
        target.update(f"✗ {err.message}")

    def action_review(self) -> None:
        self.clear_errors()
        try:
            self.console.session.stage(self.edits())
        except FieldError as e:
            self.show_error(e)
            return
        self.console.action_open("apply")
