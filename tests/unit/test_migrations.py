"""The volume's format and the boot's migrations (appliance/migrations)."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

import pytest
import tomlkit

from appliance import migrations, paths, recovery
from appliance.config import ConfigError, load, parse
from appliance.config.default import default_toml
from appliance.config.schema import Renamed
from appliance.migrations import sieve_binaries, toml_keys, version
from appliance.migrations.journal import Journal
from appliance.migrations.step import Step

# What a Debian 12 image (format 1) wrote, with an admin's own comments and values.
FORMAT_1_TOML = """\
# our mail server
[system]
hostname = "mail"
domain = "example.com"

# The certificate and ciphers of every TLS service.
[tls]
# admin: only TLS 1.3 on IMAP since the audit
tls_min_version = "TLSv1.3"  # do not lower
ciphers = "ECDHE-RSA-AES128-GCM-SHA256"

[smtpd.submission]
tls_min_version = "TLSv1.3"

[webmail]
title = "Our mail"
tls_min_version = "TLSv1.3"
"""


@pytest.fixture
def volume(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data volume is the sandbox's folder; returns it."""
    data = sandbox.parent
    monkeypatch.setattr(paths, "DATA", data)
    monkeypatch.setattr(paths, "VERSION", data / "VERSION")
    monkeypatch.setattr(paths, "MIGRATION_JOURNAL", data / ".migration")
    monkeypatch.setattr(paths, "SPAMASSASSIN_DIR", data / "spamassassin")
    (data / "etc").mkdir()
    (data / "etc/debian_version").write_text("13.8\n")
    return data


def format_1_volume(data: Path) -> None:
    """A volume a Debian 12 image used: its toml and last good copy, a user with Sieve
    scripts and their binaries, DKIM and TLS keys; no VERSION."""
    paths.CONFIG.write_text(FORMAT_1_TOML)
    os.chmod(paths.CONFIG, 0o600)
    recovery.last_good_path().write_text(FORMAT_1_TOML)
    sieve = data / "mail/alice/sieve"
    sieve.mkdir(parents=True)
    (sieve / "vacation.sieve").write_text('require "vacation";\nvacation "away";\n')
    (sieve / "vacation.svbin").write_bytes(b"\x00svbin of pigeonhole 0.5")
    (data / "mail/alice/.dovecot.sieve").symlink_to("sieve/vacation.sieve")
    (data / "mail/alice/.dovecot.svbin").write_bytes(b"\x00active svbin")
    (data / "mail/alice/Maildir/cur").mkdir(parents=True)
    (data / "mail/alice/Maildir/cur/1.eml:2,S").write_text("Subject: hi\n\nhello\n")
    for folder, name in (("dkim/default", "private"), ("tls", "key.pem")):
        (data / folder).mkdir(parents=True)
        (data / folder / name).write_text("-----BEGIN PRIVATE KEY-----\n")
        os.chmod(data / folder / name, 0o640)
        os.chown(data / folder / name, 999, 999)  # qpsmtpd's, not root's


def tree(data: Path) -> dict[str, tuple[object, ...]]:
    """Every path under DATA with its type, mode, owner and content (and a file's
    mtime): what `no byte changed` compares. Folders' own times are left out (adding and
    removing an entry changes them)."""
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(data.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(data))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path), st.st_uid, st.st_gid)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", st.st_mode, st.st_uid, st.st_gid)
        else:
            out[rel] = ("file", st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                        hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def test_a_new_volume_gets_the_current_version_written(volume: Path) -> None:
    migrations.at_boot(volume_used=False)
    assert paths.VERSION.read_text() == (
        f"format {migrations.CURRENT_FORMAT}\nwritten-by appliance "
        f"{version.appliance.__version__} (Debian 13)\n")
    assert version.read() == version.VolumeVersion(migrations.CURRENT_FORMAT,
                                                   version.this_release())
    assert not paths.MIGRATION_JOURNAL.exists()


def test_a_format_1_volume_is_migrated_and_its_keys_untouched(
        volume: Path, caplog: pytest.LogCaptureFixture) -> None:
    format_1_volume(volume)
    keys_before = {k: v for k, v in tree(volume).items() if k.startswith(("dkim", "tls"))}
    with caplog.at_level(logging.INFO, logger="appliance.migrate"):
        migrations.at_boot(volume_used=True)

    text = paths.CONFIG.read_text()
    assert "# admin: only TLS 1.3 on IMAP since the audit\n" \
           'min_version = "TLSv1.3"  # do not lower\n' in text  # its line, its comments
    assert text.replace('\nmin_version = "TLSv1.3"  #', '\ntls_min_version = "TLSv1.3"  #') \
        == FORMAT_1_TOML  # nothing else changed
    config = load(paths.CONFIG)
    assert config.get("tls.min_version") == "TLSv1.3"
    assert config.get("smtpd.submission.tls_min_version") == "TLSv1.3"  # kept their names
    assert config.get("webmail.tls_min_version") == "TLSv1.3"
    assert stat.S_IMODE(paths.CONFIG.stat().st_mode) == 0o600
    backup = paths.CONFIG.with_name("appliance.toml.format1")
    assert backup.read_text() == FORMAT_1_TOML
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert load(recovery.last_good_path()).get("tls.min_version") == "TLSv1.3"

    assert sieve_binaries.binaries() == []
    assert not (volume / "mail/alice/sieve/vacation.svbin").exists()
    assert not (volume / "mail/alice/.dovecot.svbin").exists()
    assert (volume / "mail/alice/sieve/vacation.sieve").exists()
    assert (volume / "mail/alice/Maildir/cur/1.eml:2,S").read_text() == "Subject: hi\n\nhello\n"
    assert {k: v for k, v in tree(volume).items() if k.startswith(("dkim", "tls"))} \
        == keys_before

    assert version.read() == version.VolumeVersion(2, version.this_release())
    assert not paths.MIGRATION_JOURNAL.exists()
    logged = [r.getMessage() for r in caplog.records]
    assert "migrate: format 1 -> 2: appliance.toml keys: tls.tls_min_version -> " \
           "tls.min_version" in logged
    assert "migrate: format 1 -> 2: appliance.toml: renamed tls.tls_min_version to " \
           "tls.min_version ('TLSv1.3')" in logged
    assert "migrate: format 1 -> 2: removed 2 compiled Sieve script(s) of 1 home(s); " \
           "Dovecot compiles each script again when it next runs it" in logged
    assert logged[-1] == "migrate: the volume is format 2 now"


def test_a_migrated_volume_boots_again_without_a_step(
        volume: Path, caplog: pytest.LogCaptureFixture) -> None:
    format_1_volume(volume)
    migrations.at_boot(volume_used=True)
    before = tree(volume)
    with caplog.at_level(logging.INFO, logger="appliance.migrate"):
        migrations.at_boot(volume_used=True)
    assert tree(volume) == before
    assert not [r for r in caplog.records if "migrate: format" in r.getMessage()]


def test_a_newer_volume_is_refused_and_not_a_byte_changed(volume: Path) -> None:
    format_1_volume(volume)
    paths.VERSION.write_text("format 3\nwritten-by appliance 0.3.0 (Debian 14)\n")
    before = tree(volume)
    with pytest.raises(migrations.MigrationError) as refused:
        migrations.at_boot(volume_used=True)
    assert str(refused.value) == (
        "this volume was written by appliance format 3 / release appliance 0.3.0 "
        f"(Debian 14), newer than this image (format 2, {version.this_release()}): "
        "run that image or newer; nothing was changed")
    assert tree(volume) == before


@pytest.mark.parametrize("content", [b"", b"format two\n", b"\xff\xfe", b"written-by x\n"])
def test_an_unreadable_version_is_refused_and_not_a_byte_changed(
        volume: Path, content: bytes) -> None:
    format_1_volume(volume)
    paths.VERSION.write_bytes(content)
    before = tree(volume)
    with pytest.raises(migrations.MigrationError, match=r"VERSION is unreadable .*"
                       "nothing was changed"):
        migrations.at_boot(volume_used=True)
    assert tree(volume) == before


def failing_after_a_change(journal: Journal) -> list[str]:
    """A step that changes files (as a real one does, through the journal) and fails."""
    sieve_binaries.remove_binaries(journal)
    journal.keep(paths.CONFIG)
    paths.CONFIG.write_text("half written")
    journal.create(paths.DATA / "new-state")
    (paths.DATA / "new-state").mkdir()
    (paths.DATA / "new-state/db").write_text("x")
    raise OSError("disk full")


def test_a_failing_step_leaves_the_volume_as_it_was(
        volume: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    format_1_volume(volume)
    os.chown(volume / "mail/alice/.dovecot.svbin", 5000, 5000)  # vmail's: kept as cp -a
    before = tree(volume)
    monkeypatch.setattr(migrations, "STEPS", (
        toml_keys.step(2), Step(2, "broken", "a step that fails", failing_after_a_change)))
    with pytest.raises(migrations.MigrationError) as failed:
        migrations.at_boot(volume_used=True)
    assert str(failed.value) == ("migration step broken failed: OSError: disk full; the "
                                 "volume is as it was (format 1)")
    assert tree(volume) == before  # the backup, the svbin, new-state: all as before
    assert not paths.VERSION.exists()
    assert "migration step broken failed" in caplog.text


def killed_after_a_change(journal: Journal) -> list[str]:
    sieve_binaries.remove_binaries(journal)
    journal.keep(paths.CONFIG)
    paths.CONFIG.write_text("half written")
    raise SystemExit(137)  # the container is killed: nothing catches it


def test_a_journal_left_by_a_killed_container_is_rolled_back(
        volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    format_1_volume(volume)
    before = tree(volume)
    with monkeypatch.context() as m:
        m.setattr(migrations, "STEPS", (
            toml_keys.step(2), Step(2, "killed", "killed mid-way", killed_after_a_change)))
        with pytest.raises(SystemExit):
            migrations.at_boot(volume_used=True)
    assert paths.MIGRATION_JOURNAL.is_dir() and tree(volume) != before
    leftover = Journal.leftover()
    assert leftover is not None
    leftover.rollback()
    assert tree(volume) == before


def test_the_next_boot_undoes_a_killed_migration_then_migrates(
        volume: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    format_1_volume(volume)
    with monkeypatch.context() as m:
        m.setattr(migrations, "STEPS", (
            toml_keys.step(2), Step(2, "killed", "killed mid-way", killed_after_a_change)))
        with pytest.raises(SystemExit):
            migrations.at_boot(volume_used=True)
    migrations.at_boot(volume_used=True)
    assert "migrate: a migration was interrupted (5 change(s) recorded): undoing it " \
           "before trying again" in caplog.text
    assert paths.CONFIG.with_name("appliance.toml.format1").read_text() == FORMAT_1_TOML
    assert load(paths.CONFIG).get("tls.min_version") == "TLSv1.3"
    assert version.read() == version.VolumeVersion(2, version.this_release())
    assert not paths.MIGRATION_JOURNAL.exists()


def test_a_journal_of_a_migration_that_wrote_its_version_is_only_removed(
        volume: Path) -> None:
    format_1_volume(volume)
    migrations.at_boot(volume_used=True)
    migrated = tree(volume)
    journal = Journal.begin(2)  # killed after VERSION, before the journal's removal
    journal.keep(paths.CONFIG)
    paths.CONFIG.with_name("appliance.toml.format1").unlink()
    journal.create(paths.CONFIG.with_name("appliance.toml.format1"))
    paths.CONFIG.with_name("appliance.toml.format1").write_text(FORMAT_1_TOML)
    os.chmod(paths.CONFIG.with_name("appliance.toml.format1"), 0o600)
    os.utime(paths.CONFIG.with_name("appliance.toml.format1"),
             ns=(migrated["appliance.toml.format1"][4],) * 2)  # type: ignore[arg-type]
    migrations.at_boot(volume_used=True)
    assert tree(volume) == migrated


def test_a_used_volume_without_a_config_still_counts_as_format_1(volume: Path) -> None:
    (volume / "mail/alice/Maildir").mkdir(parents=True)
    migrations.at_boot(volume_used=True)
    assert version.read() == version.VolumeVersion(2, version.this_release())


def test_the_same_format_from_another_release_records_who_wrote_it_last(
        volume: Path) -> None:
    paths.VERSION.write_text("format 2\nwritten-by appliance 0.1.9 (Debian 13)\n")
    migrations.at_boot(volume_used=True)
    assert version.read() == version.VolumeVersion(2, version.this_release())


def test_the_journal_copies_as_cp_a_does(volume: Path) -> None:
    folder = volume / "spamassassin/bayes"
    folder.mkdir(parents=True)
    (folder / "bayes_toks").write_bytes(b"\x00\x01")
    os.chown(folder / "bayes_toks", 106, 109)
    os.chmod(folder / "bayes_toks", 0o660)
    os.utime(folder / "bayes_toks", ns=(1_000_000_000, 1_000_000_000))
    os.chown(folder, 106, 109)
    before = tree(volume)
    journal = Journal.begin(2)
    journal.keep(folder)
    aside = folder.with_name("bayes.format1")
    journal.create(aside)
    folder.rename(aside)
    folder.mkdir()
    (folder / "bayes_toks").write_bytes(b"fresh")
    journal.rollback()
    assert tree(volume) == before
    assert not paths.MIGRATION_JOURNAL.exists()


def test_the_journal_refuses_paths_off_the_volume(volume: Path, tmp_path_factory:
                                                  pytest.TempPathFactory) -> None:
    journal = Journal.begin(2)
    with pytest.raises(Exception, match="is not on the volume"):
        journal.keep(tmp_path_factory.mktemp("elsewhere") / "file")


def test_a_removed_key_is_kept_as_a_comment(volume: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    paths.CONFIG.write_text(FORMAT_1_TOML)
    monkeypatch.setattr(toml_keys, "KEY_HISTORY", (
        Renamed("webmail.title", None, 2, "the login page names the host"),))
    journal = Journal.begin(2)
    done = toml_keys.step(2).run(journal)
    journal.close()
    assert done == ["appliance.toml: kept the old file as appliance.toml.format1",
                    "appliance.toml: removed webmail.title (kept as a comment)"]
    text = paths.CONFIG.read_text()
    assert '# title = "Our mail"  (removed in format 2: the login page names the host)' \
        in text
    assert "title" not in tomlkit.parse(text)["webmail"]  # type: ignore[operator]


def test_a_toml_that_is_not_toml_is_left_to_the_boot_to_report(volume: Path) -> None:
    paths.CONFIG.write_text("[tls\ntls_min_version = 1\n")
    migrations.at_boot(volume_used=True)
    assert paths.CONFIG.read_text() == "[tls\ntls_min_version = 1\n"
    assert version.read() is not None


def test_the_old_name_written_by_hand_says_what_it_became() -> None:
    with pytest.raises(ConfigError) as e:
        parse('[tls]\ntls_min_version = "TLSv1.3"\n', "appliance.toml")
    assert str(e.value) == ("appliance.toml:2: tls.tls_min_version = 'TLSv1.3': "
                            "tls.tls_min_version was renamed tls.min_version in volume "
                            "format 2; write the new name")


def test_the_default_file_is_of_the_current_format() -> None:
    config = parse(default_toml())
    assert "min_version" in config.document["tls"]
    assert "tls_min_version" not in config.document["tls"]
