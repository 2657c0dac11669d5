"""Backup and restore of the data volume, on a temporary folder (no services running)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from appliance import paths
from appliance.commands import backup
from appliance.config import ConfigError
from appliance.migrations.version import CURRENT_FORMAT


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    (root / "mail/alice/Maildir/cur").mkdir(parents=True)
    (root / "mail/alice/Maildir/cur/1.eml").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
    (root / "appliance.toml").write_text('[system]\ndomain = "corp.example"\n')
    (root / "tls").mkdir()
    (root / "tls/key.pem").write_text("KEY")
    (root / "tls/key.pem").chmod(0o600)
    (root / "VERSION").write_text(f"format {CURRENT_FORMAT}\nwritten-by a test\n")
    monkeypatch.setattr(paths, "DATA", root)
    monkeypatch.setattr(paths, "VERSION", root / "VERSION")
    monkeypatch.setattr(paths, "CONFIG", root / "appliance.toml")
    monkeypatch.setattr(paths, "SUPERVISOR_SOCKET", tmp_path / "no.sock")
    return root


def test_round_trip_restores_content_and_modes(data: Path) -> None:
    archive = io.BytesIO()
    assert backup.backup(archive) >= 6
    (data / "mail/alice/Maildir/cur/1.eml").unlink()
    (data / "appliance.toml").write_text('[system]\ndomain = "other.example"\n')
    (data / "new-since-backup").write_text("gone after restore")
    archive.seek(0)
    backup.restore(archive)
    assert (data / "mail/alice/Maildir/cur/1.eml").read_bytes().startswith(b"Subject: hi")
    assert "corp.example" in (data / "appliance.toml").read_text()
    assert not (data / "new-since-backup").exists()
    assert (data / "tls/key.pem").stat().st_mode & 0o777 == 0o600
    assert not [p for p in data.iterdir() if p.name.startswith(backup.RESTORE_PREFIX)]


def _archive(members: dict[str, bytes], link: tuple[str, str] | None = None) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            tar.addfile(info)
    out.seek(0)
    return out


@pytest.mark.parametrize(("archive", "message"), [
    (lambda: io.BytesIO(b"not an archive"), "not a backup archive"),
    (lambda: _archive({"mail/x": b"x"}), "no appliance.toml"),
    (lambda: _archive({"appliance.toml": b"[system\n",
                       "VERSION": f"format {CURRENT_FORMAT}\n".encode()}), "not valid TOML"),
    # a volume of another format: the image that made it restores it, then upgrades it
    (lambda: _archive({"appliance.toml": b""}), "format 1 volume .*restore it with the image"),
    (lambda: _archive({"appliance.toml": b"", "VERSION": b"format 99\n"}),
     "format 99 volume"),
    (lambda: _archive({"../escape": b"x"}), "outside"),
    (lambda: _archive({"appliance.toml": b""}, ("evil", "/etc/passwd")), "outside"),
])
def test_bad_archives_are_refused_and_nothing_changes(data: Path, archive, message: str
                                                      ) -> None:
    before = sorted(str(p) for p in data.rglob("*"))
    with pytest.raises(ConfigError, match=message):
        backup.restore(archive())
    assert sorted(str(p) for p in data.rglob("*")) == before
    assert "corp.example" in (data / "appliance.toml").read_text()


def test_a_failed_swap_puts_the_old_volume_back(data: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    archive = io.BytesIO()
    backup.backup(archive)
    (data / "appliance.toml").write_text('[system]\ndomain = "current.example"\n')
    archive.seek(0)
    real_rename = Path.rename

    def failing_rename(self: Path, target: Path) -> Path:
        staged = self.parent.name.startswith(backup.RESTORE_PREFIX) \
            and self.parent.name != f"{backup.RESTORE_PREFIX}old"
        if self.name == "tls" and staged:
            raise OSError("disk trouble")  # the staged tls/ cannot move in
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="disk trouble"):
        backup.restore(archive)
    assert "current.example" in (data / "appliance.toml").read_text()
    assert (data / "mail/alice/Maildir/cur/1.eml").exists()
    assert not [p for p in data.iterdir() if p.name.startswith(backup.RESTORE_PREFIX)]
