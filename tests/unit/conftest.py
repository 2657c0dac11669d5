"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import paths
from appliance.apply import commit
from appliance.commands import base
from tests.clock import Clock


@pytest.fixture
def clock() -> Clock:
    """The wall clock of the code under test, moved by hand (tests/clock.py)."""
    return Clock()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The appliance's files under TMP_PATH, and commands that commit there without the
    services' checkers (postfix check, doveconf: not on a build host). Returns where
    appliance.toml goes (not written yet)."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    monkeypatch.setattr(paths, "MAIL_DIR", tmp_path / "mail")
    monkeypatch.setattr(paths, "MAIL_ARCHIVE", tmp_path / "archive")
    monkeypatch.setattr(base, "commit", lambda config, dry_run=False:
                        commit(config, dry_run=dry_run, check=False))
    return paths.CONFIG
