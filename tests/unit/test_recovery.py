"""A broken appliance.toml at boot: which configuration runs, what status and the
healthcheck say, and how apply ends it (appliance/recovery.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance import paths, recovery
from appliance.apply import apply
from appliance.commands import table
from appliance.config import Config, ConfigError, parse
from appliance.config.default import default_toml
from appliance.services.supervisord import supervisord_conf, waiting_conf

GOOD = default_toml(hostname="mail", domain="example.com")


def _named(hostname: str) -> str:
    return GOOD.replace('hostname = "mail"', f'hostname = "{hostname}"')


BROKEN = _named("not a host!")


@pytest.fixture
def volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A volume with appliance.toml, rendering into a root of its own."""
    monkeypatch.setattr(paths, "ROOT", tmp_path / "root")
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "data/appliance.toml")
    paths.CONFIG.parent.mkdir()
    return paths.CONFIG


def _started(config: Config) -> str:
    return config.data["system"]["hostname"]


def test_a_good_toml_boots_as_it_is(volume: Path) -> None:
    volume.write_text(GOOD)
    assert recovery.boot(_started) == ("mail", None)


def test_a_broken_toml_boots_on_the_last_good_copy_and_says_which_key(volume: Path) -> None:
    volume.write_text(BROKEN)
    recovery.last_good_path().write_text(_named("previous"))
    started, state = recovery.boot(_started)
    assert started == "previous"
    assert state is not None and state.mode == recovery.LAST_GOOD
    assert "system.hostname" in state.error and str(volume) in state.error


def test_a_broken_toml_without_a_good_copy_boots_with_nothing_running(volume: Path) -> None:
    volume.write_text("[system\n")  # not TOML at all
    started, state = recovery.boot(_started)
    assert started is None
    assert state is not None and state.mode == recovery.WAITING
    assert "not valid TOML" in state.error and "file not found" in state.fallback_error


def test_a_toml_a_service_refuses_falls_back_as_a_broken_one(volume: Path) -> None:
    volume.write_text(_named("refused"))
    recovery.last_good_path().write_text(GOOD)

    def start(config: Config) -> str:  # as apply's checkers do (postfix check, ...)
        if _started(config) == "refused":
            raise ConfigError("postfix refused the new configuration: fatal: ...")
        return _started(config)

    started, state = recovery.boot(start)
    assert started == "mail" and state is not None and "postfix refused" in state.error
    recovery.last_good_path().write_text(_named("refused"))
    assert recovery.boot(start) == (None, recovery.BootState(
        recovery.WAITING, state.error, state.error))


def test_apply_keeps_what_it_applied_as_the_last_good_copy(
        volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume.write_text(GOOD)
    apply(parse(GOOD), check=False)
    assert recovery.last_good_path().read_text() == GOOD
    assert recovery.last_good_path().stat().st_mode & 0o777 == 0o600  # password hashes
    from appliance.smtpd import peers

    with monkeypatch.context() as m:  # the SMTP daemons' loader refuses it
        m.setattr(peers, "TABLE", peers.TABLE + (("no_such_plugin", peers.ALL),))
        with pytest.raises(ConfigError, match="no_such_plugin"):
            apply(parse(GOOD.replace("max_recipients = 100", "max_recipients = 50")))
    assert recovery.last_good_path().read_text() == GOOD
    apply(parse(_named("other")), dry_run=True)
    assert recovery.last_good_path().read_text() == GOOD  # a dry run applies nothing


def test_an_apply_ends_the_fallback_and_its_report(volume: Path) -> None:
    volume.write_text(BROKEN)
    recovery.last_good_path().write_text(GOOD)
    recovery.write_state(recovery.BootState(recovery.LAST_GOOD, "the boot's error"))
    config, problem = recovery.current()
    assert config is not None and config.source == GOOD  # what runs: the last good copy
    assert problem is not None and "system.hostname" in problem
    assert "last good configuration" in problem and "appliance apply" in problem
    volume.write_text(GOOD)  # fixed, not applied yet
    assert "valid again but not applied" in (recovery.current()[1] or "")
    apply(parse(GOOD), check=False)
    assert recovery.read_state() is None
    assert recovery.current()[1] is None


def test_a_toml_broken_after_boot_is_reported_while_the_applied_one_runs(
        volume: Path) -> None:
    volume.write_text(GOOD)
    apply(parse(GOOD), check=False)
    volume.write_text(BROKEN)
    config, problem = recovery.current()
    assert config is not None and config.data["system"]["hostname"] == "mail"
    assert problem is not None and "system.hostname" in problem
    assert "keep the configuration last applied" in problem


def test_the_healthcheck_fails_naming_the_key_when_nothing_runs(
        volume: Path, capsys: pytest.CaptureFixture[str]) -> None:
    volume.write_text(BROKEN)
    recovery.write_state(recovery.BootState(recovery.WAITING, "x", "file not found"))
    assert table.main(["healthcheck"]) == 1
    err = capsys.readouterr().err
    assert "system.hostname = 'not a host!'" in err and str(volume) in err
    assert "no mail service runs" in err
    assert "SMTP" not in err  # nothing is probed: nothing was started


def test_the_boot_that_waits_runs_supervisord_without_programs() -> None:
    assert "[program:" not in waiting_conf()
    full = supervisord_conf(parse(GOOD))
    assert full.startswith(waiting_conf()) and "[program:postfix]" in full


def test_the_boot_banner_says_what_runs_and_how_to_fix_it(volume: Path) -> None:
    lines = recovery.boot_banner(recovery.BootState(recovery.WAITING, "E", "file not found"))
    assert lines[0] == "appliance.toml is broken: E"
    assert "no mail service runs" in lines[1] and "file not found" in lines[1]
    assert "vi /var/lib/appliance/appliance.toml" in lines[2]


# -- a missing appliance.toml on a used volume; a failed reload; a crash at boot ----------

def test_a_missing_toml_beside_a_last_good_copy_boots_on_it_and_writes_no_default(
        volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance import boot as supervisor

    monkeypatch.setattr(paths, "MAIL_DIR", volume.parent / "mail")
    monkeypatch.setattr(paths, "DKIM_KEYS", volume.parent / "dkim")
    recovery.last_good_path().write_text(_named("previous"))
    assert supervisor.first_boot_config() is False
    assert not volume.exists()  # a default here would be applied and kept as last good
    started, state = recovery.boot(_started)
    assert started == "previous" and state is not None and state.mode == recovery.LAST_GOOD
    recovery.write_state(state)
    problem = recovery.current()[1] or ""
    assert "file not found" in problem and "last good configuration" in problem


def test_a_volume_with_mail_but_no_configuration_at_all_waits(
        volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance import boot as supervisor

    monkeypatch.setattr(paths, "MAIL_DIR", volume.parent / "mail")
    monkeypatch.setattr(paths, "DKIM_KEYS", volume.parent / "dkim")
    paths.DKIM_KEYS.mkdir()  # as prepare_volume() leaves a new volume: still a first boot
    (paths.MAIL_DIR / "alice/Maildir").mkdir(parents=True)
    assert supervisor.first_boot_config() is False and not volume.exists()
    assert recovery.boot(_started)[1] == recovery.BootState(
        recovery.WAITING, f"{volume}: file not found",
        f"{recovery.last_good_path()}: file not found")
    shutil.rmtree(paths.MAIL_DIR)
    paths.MAIL_DIR.mkdir()
    assert supervisor.first_boot_config() is True and volume.exists()


def test_an_apply_whose_reload_failed_is_not_kept_as_the_last_good_copy(
        volume: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume.write_text(GOOD)
    apply(parse(GOOD), check=False)
    socket = tmp_path / "supervisor.sock"  # supervisord runs: services are told
    socket.touch()
    monkeypatch.setattr(paths, "SUPERVISOR_SOCKET", socket)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # and none can be: no command
    p = apply(parse(_named("other")), check=False)
    assert p.reload_failed
    assert recovery.last_good_path().read_text() == GOOD


@pytest.mark.parametrize("crash", [KeyError("smtpd"), OSError(5, "I/O error")])
def test_any_exception_starting_on_the_toml_falls_back_instead_of_crash_looping(
        volume: Path, crash: Exception, caplog: pytest.LogCaptureFixture) -> None:
    volume.write_text(_named("unusual"))
    recovery.last_good_path().write_text(GOOD)

    def start(config: Config) -> str:  # a renderer tripping on an unusual, valid file
        if _started(config) != "mail":
            raise crash
        return _started(config)

    started, state = recovery.boot(start)
    assert started == "mail" and state is not None and state.mode == recovery.LAST_GOOD
    assert type(crash).__name__ in state.error and str(volume) in state.error
    assert "Traceback" in caplog.text
    recovery.last_good_path().write_text(_named("unusual"))
    started, state = recovery.boot(start)
    assert started is None and state is not None and state.mode == recovery.WAITING


def test_an_interrupt_at_boot_is_not_swallowed(volume: Path) -> None:
    volume.write_text(GOOD)

    def start(config: Config) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recovery.boot(start)


def test_the_boot_state_is_readable_by_root_only(volume: Path) -> None:
    recovery.write_state(recovery.BootState(recovery.WAITING, "error quoting the file"))
    assert recovery.state_path().stat().st_mode & 0o777 == 0o600
