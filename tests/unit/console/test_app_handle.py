"""The console's app handle (ConsoleScreen.console) and its stylesheet file (console.tcss)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Label

from appliance import paths
from appliance.config.default import default_toml
from console.app import ConsoleApp
from console.screens.base import ConsoleScreen
from console.screens.mtu import MTUScreen
from console.session import Session


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    paths.CONFIG.write_text(default_toml())
    return Session()


async def test_screens_reach_the_console_app_and_its_stylesheet(session: Session) -> None:
    app = ConsoleApp(session=session)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")  # the MTU screen: an edit form
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MTUScreen)
        assert screen.console is app
        assert screen.console.session is session
        # `.label { width: 22; }` is in console.tcss only: a label of auto width would not
        # be 22 cells wide
        label = screen.query(".label").first(Label)
        assert label.region.width == 22


async def test_a_console_screen_in_another_app_is_refused() -> None:
    class Other(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ConsoleScreen())

    app = Other()
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConsoleScreen)
        with pytest.raises(TypeError, match="runs inside ConsoleApp"):
            _ = screen.console
