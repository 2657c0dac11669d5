"""5. Mail delivery: smarthost, internal mail server, per-domain servers, HELO name."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

from console.screens.form import EditScreen


class DeliveryScreen(EditScreen):
    TITLE_TEXT = "Mail delivery"

    def fields(self) -> Iterable[tuple[str, str, bool, str]]:
        yield ("delivery.smarthost", "Smarthost", False, "host[:port]; empty: direct by MX")
        yield ("delivery.smarthost_user", "Smarthost user", False, "empty: no AUTH")
        yield ("delivery.smarthost_password", "Smarthost password", False, "")
        yield ("delivery.smarthost_tls", "Smarthost TLS", False, "may, encrypt or none")
        yield ("delivery.delegate_mail_server", "Internal mail server", False,
               "all local mail goes there; empty: mailboxes here")
        yield ("delivery.helo_host", "HELO name", False, "empty: host name")
        for domain in sorted(self.console.session.config.data["domains"]):
            yield (f"domains.{domain}.mail_server", _fit("@" + domain), False,
                   f"server for {domain}; empty: as above")

    def compose_extra(self) -> ComposeResult:
        with Horizontal(classes="buttons"):
            yield Button("Review & apply", id="review", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "review":
            self.action_review()


def _fit(label: str, width: int = 21) -> str:
    """A label in its column (22 wide, one space before the field): a long domain keeps
    its start and its end, which tell it apart from its neighbours."""
    if len(label) <= width:
        return label
    keep = width - 1
    return label[:keep // 2] + "…" + label[-(keep - keep // 2):]
