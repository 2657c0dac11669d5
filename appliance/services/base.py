"""What a renderer returns: files, each with its owner and mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderedFile:
    """One generated file. `path` is absolute inside the container (re-rooted in tests)."""

    path: str
    text: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # holds a password in clear: its diff is never shown
