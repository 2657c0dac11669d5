"""The migration journal: what lets a failed or killed migration undo itself.

A migration opens a journal (paths.MIGRATION_JOURNAL, `.migration/` on the volume)
before its first step. A step calls `keep(path)` before it changes, replaces or
deletes PATH (a file, a symbolic link or a folder), and `create(path)` before it makes a
new one. `keep` copies PATH into the journal as `cp -a` would (content, mode, owner,
times; folders whole), and both record an entry only once the copy is safely on disk,
so every change the volume has seen is described by an entry written before it.

`rollback()` undoes the entries newest first: what was created is removed, what was
kept is copied back over whatever is there now. It copies rather than moves, so a
rollback killed half way is simply done again by the next boot.

On disk, for any later release to read (a journal may outlive the image that wrote it):

    .migration/target      the format the migration was heading for ("2")
    .migration/entries     one JSON object a line: {"keep": REL, "copy": N} or
                           {"create": REL}, REL relative to the volume
    .migration/saved/N     the copy of entry N
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from appliance import paths


class JournalError(Exception):
    """The journal cannot do what was asked (a path outside the volume, a bad entry)."""


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def _own_like(source: Path, target: Path) -> None:
    st = source.lstat()
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)


def copy_exactly(source: Path, target: Path) -> None:
    """cp -a SOURCE TARGET: content, mode, owner and times, folders whole, links as links."""
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True)  # copy2: mode and times
        for root, dirs, files in os.walk(target):
            for name in dirs + files:
                copied = Path(root) / name
                _own_like(source / copied.relative_to(target), copied)
    else:
        shutil.copy2(source, target)
    _own_like(source, target)
    if source.is_dir() and not source.is_symlink():
        shutil.copystat(source, target)  # the folder's times, after filling it


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.entries: list[dict[str, object]] = []
        self._seen: set[str] = set()

    # ---- opening ---------------------------------------------------------------

    @classmethod
    def begin(cls, target: int) -> Journal:
        """A new journal for a migration to format TARGET. Raises FileExistsError if one
        is left (roll that back first)."""
        folder = paths.MIGRATION_JOURNAL
        folder.mkdir(mode=0o700)
        (folder / "saved").mkdir()
        (folder / "target").write_text(f"{target}\n", encoding="utf-8")
        (folder / "entries").touch()
        _fsync_dir(folder)
        return cls(folder)

    @classmethod
    def leftover(cls) -> Journal | None:
        """The journal a killed migration left, or None."""
        folder = paths.MIGRATION_JOURNAL
        if not folder.is_dir():
            return None
        journal = cls(folder)
        try:
            text = (folder / "entries").read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""  # killed while opening it: nothing was changed yet
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                break  # the last line, cut off by the kill: its change was never made
            journal.entries.append(entry)
        return journal

    def target(self) -> int | None:
        try:
            return int((self.folder / "target").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # ---- recording -------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        try:
            rel = path.absolute().relative_to(paths.DATA.absolute())
        except ValueError:
            raise JournalError(f"{path} is not on the volume ({paths.DATA})") from None
        if not rel.parts or rel.parts[0] == paths.MIGRATION_JOURNAL.name:
            raise JournalError(f"{path}: the journal cannot keep itself or the volume")
        return str(rel)

    def _record(self, entry: dict[str, object]) -> None:
        with open(self.folder / "entries", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries.append(entry)

    def keep(self, path: Path) -> None:
        """Before PATH is changed or deleted: keep a copy to restore on rollback."""
        rel = self._relative(path)
        if rel in self._seen:
            return  # the first copy is the state to go back to
        if not path.exists() and not path.is_symlink():
            self.create(path)
            return
        number = len(self.entries)
        saved = self.folder / "saved" / str(number)
        partial = saved.with_name(f"{number}.partial")
        _remove(partial)
        copy_exactly(path, partial)
        partial.rename(saved)
        _fsync_dir(saved.parent)
        self._seen.add(rel)
        self._record({"keep": rel, "copy": number})

    def create(self, path: Path) -> None:
        """Before PATH is made (it does not exist yet): remove it on rollback."""
        rel = self._relative(path)
        if rel in self._seen:
            return
        if path.exists() or path.is_symlink():
            self.keep(path)
            return
        self._seen.add(rel)
        self._record({"create": rel})

    # ---- ending ----------------------------------------------------------------

    def rollback(self) -> None:
        """Put back everything the entries describe, newest first, then remove the
        journal."""
        for entry in reversed(self.entries):
            rel = entry.get("keep") or entry.get("create")
            if not isinstance(rel, str) or not rel or rel.startswith(("/", "..")):
                raise JournalError(f"{self.folder}/entries: bad entry {entry!r}")
            target = paths.DATA / rel
            _remove(target)
            if "keep" in entry:
                target.parent.mkdir(parents=True, exist_ok=True)
                copy_exactly(self.folder / "saved" / str(entry["copy"]), target)
        self.close()

    def close(self) -> None:
        """The migration is over (committed or rolled back): the journal goes."""
        shutil.rmtree(self.folder)
