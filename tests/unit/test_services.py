"""Each service's check and reload decisions, with a fake command runner.

The real checkers and daemons run in the e2e tests; here every command a service would
run is recorded and answered by the fake, so each decision (which command, when to
restart instead of reload, what a failure says) is pinned down in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance import paths
from appliance.apply import Plan, reload_services
from appliance.config import Config, ConfigError, parse
from appliance.config.default import default_toml
from appliance.services.base import RELOAD_FAILED, Change, Completed, RenderedFile, Staged
from appliance.services.clamav import CLAMD_CONF, FRESHCLAM_CONF, ClamAV
from appliance.services.dovecot import CONF as DOVECOT_CONF
from appliance.services.dovecot import DUPLICATES_SIEVE, Dovecot
from appliance.services.fetchmail import RC, Fetchmail
from appliance.services.postfix import Postfix
from appliance.services.registry import SERVICES, by_name
from appliance.services.smtpd import Smtpd
from appliance.services.spamassassin import SpamAssassin
from appliance.services.supervisord import Supervisord, supervisord_conf
from appliance.services.unbound import CONF as UNBOUND_CONF
from appliance.services.unbound import Unbound
from appliance.services.webmail import NGINX_CONF, PHP_FPM_CONF, Webmail
from appliance.tls import CertificatePair


class FakeRunner:
    """Records every command; answers from `answers` (the first whose argv prefix
    matches), else exit 0."""

    def __init__(self, answers: dict[tuple[str, ...], Completed] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.answers = answers or {}

    def __call__(self, *argv: str, timeout: float = 60) -> Completed:
        self.calls.append(argv)
        for prefix, answer in self.answers.items():
            if argv[:len(prefix)] == prefix:
                return answer
        return Completed(0)


FAILED = Completed(1, stderr="boom")


@pytest.fixture
def config() -> Config:
    return parse(default_toml())


def _change(config: Config, files: tuple[RenderedFile, ...] = (), *,
            previous: dict[str, str | None] | None = None, running: set[str] | None = None,
            certificate: CertificatePair | None = None) -> Change:
    return Change(config, files, frozenset(f.path for f in files), previous or {},
                  certificate=certificate, running=lambda: running or set())


def _staged(tmp_path: Path, files: list[RenderedFile]) -> Staged:
    for f in files:
        target = tmp_path / "stage" / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text)
    return Staged(tmp_path / "stage", tmp_path / "live", tuple(files))


# --- the registry ------------------------------------------------------------------

def test_the_registry_names_each_service_once_and_programs_once(config: Config) -> None:
    names = [s.name for s in SERVICES]
    assert len(names) == len(set(names)) and all(names)
    programs = [p.name for s in SERVICES for p in s.programs(config)]
    assert len(programs) == len(set(programs))
    conf = supervisord_conf(config)
    assert all(f"[program:{p}]" in conf for p in programs)
    assert by_name("clamav").name == "clamav"


def test_a_disabled_service_has_no_program(config: Config) -> None:
    off = parse(default_toml(overrides={"clamav.enabled": False,
                                        "spamassassin.enabled": False,
                                        "webmail.enabled": False}))
    names = {p.name for s in SERVICES for p in s.programs(off)}
    # nginx stays: it serves the MTA-STS policy (tls.mta_sts_mode) without webmail
    assert not names & {"clamd", "freshclam", "spamd", "php-fpm"}
    assert {"clamd", "freshclam", "spamd", "nginx", "php-fpm"} <= {
        p.name for s in SERVICES for p in s.programs(config)}


# --- checks --------------------------------------------------------------------------

def test_postfix_checks_the_staged_maps_and_refuses_a_warning(
        tmp_path: Path, config: Config) -> None:
    staged = _staged(tmp_path, Postfix().render(config))
    run = FakeRunner()
    Postfix().check(staged, run)
    conf_dir = str(staged.path("/etc/postfix"))
    assert run.calls == [("postconf", "-c", conf_dir, "-n"), ("postconf", "-c", conf_dir, "-b")]
    main_cf = staged.path("/etc/postfix/main.cf").read_text()
    assert f"{conf_dir}/appliance/mailboxes" in main_cf  # the staged map, not the live one
    # postconf exits 0 on an unknown parameter: its warning refuses the file all the same
    warned = FakeRunner({("postconf",): Completed(0, stderr="postconf: warning: unused x")})
    with pytest.raises(ConfigError, match="postfix refused .*unused x"):
        Postfix().check(staged, warned)


def test_a_checker_that_cannot_run_says_so(tmp_path: Path, config: Config) -> None:
    staged = _staged(tmp_path, Unbound().render(config))
    run = FakeRunner({("unbound-checkconf",): Completed(-1, error="No such file")})
    with pytest.raises(ConfigError, match="unbound check could not run: No such file"):
        Unbound().check(staged, run)


def test_dovecot_compiles_our_sieve_scripts_with_the_staged_conf(
        tmp_path: Path, config: Config) -> None:
    staged = _staged(tmp_path, Dovecot().render(config))
    run = FakeRunner()
    Dovecot().check(staged, run)
    conf = str(staged.path(DOVECOT_CONF))
    assert run.calls[0] == ("doveconf", "-n", "-c", conf)
    assert ("sievec", "-c", conf, str(staged.path(DUPLICATES_SIEVE))) in run.calls
    refused = FakeRunner({("sievec",): Completed(1, stdout="line 3: unknown command")})
    with pytest.raises(ConfigError, match="sievec refused .*unknown command"):
        Dovecot().check(staged, refused)


def test_clamav_refuses_what_clamconf_calls_an_error_even_with_exit_0(
        tmp_path: Path, config: Config) -> None:
    staged = _staged(tmp_path, ClamAV().render(config))
    ClamAV().check(staged, FakeRunner())
    run = FakeRunner({("clamconf",): Completed(0, stdout="ERROR: Parse error at line 4")})
    with pytest.raises(ConfigError, match="clamav refused .*Parse error at line 4"):
        ClamAV().check(staged, run)


def test_webmail_checks_the_staged_file_or_else_the_live_one(
        tmp_path: Path, config: Config) -> None:
    nginx = next(f for f in Webmail().render(config) if f.path == NGINX_CONF)
    staged = _staged(tmp_path, [nginx])  # only nginx.conf changed
    run = FakeRunner()
    Webmail().check(staged, run)
    assert run.calls == [
        ("nginx", "-t", "-q", "-c", str(staged.path(NGINX_CONF))),
        ("php-fpm8.4", "-t", "-y", str(tmp_path / "live" / PHP_FPM_CONF.lstrip("/")))]


def test_fetchmail_checks_its_staged_rc(tmp_path: Path, config: Config) -> None:
    staged = _staged(tmp_path, Fetchmail().render(config))
    run = FakeRunner({("fetchmail",): FAILED})
    with pytest.raises(ConfigError, match="fetchmail refused the new configuration: boom"):
        Fetchmail().check(staged, run)
    assert run.calls == [("fetchmail", "--configdump", "--nosyslog", "-f",
                          str(staged.path(RC)))]


# --- reloads -------------------------------------------------------------------------

def test_unbound_reloads_in_place_and_restarts_only_when_that_fails(config: Config) -> None:
    run = FakeRunner()
    assert Unbound().reload(_change(config), run) == ["unbound: reload"]
    assert run.calls == [("unbound-control", "-c", UNBOUND_CONF, "reload")]
    run = FakeRunner({("unbound-control",): FAILED})
    assert Unbound().reload(_change(config), run) == ["unbound: restart"]
    assert run.calls[-1] == ("supervisorctl", "restart", "unbound")
    run = FakeRunner({("unbound-control",): FAILED, ("supervisorctl",): FAILED})
    assert Unbound().reload(_change(config), run) == ["unbound: restart" + RELOAD_FAILED]


def test_supervisord_rereads_then_updates_and_says_a_failure(config: Config) -> None:
    run = FakeRunner()
    assert Supervisord().reload(_change(config), run) == ["supervisord: update"]
    assert run.calls == [("supervisorctl", "reread"), ("supervisorctl", "update")]
    run = FakeRunner({("supervisorctl", "reread"): FAILED})
    assert Supervisord().reload(_change(config), run) == [
        "supervisord: update" + RELOAD_FAILED]
    assert ("supervisorctl", "update") in run.calls  # tried all the same


def test_spamd_is_told_only_while_it_runs(config: Config) -> None:
    run = FakeRunner()
    assert SpamAssassin().reload(_change(config), run) == [] and run.calls == []
    assert SpamAssassin().reload(_change(config, running={"spamd"}), run) == ["spamd: reload"]
    assert run.calls == [("supervisorctl", "signal", "HUP", "spamd")]


def test_clamav_restarts_only_the_program_whose_file_changed(config: Config) -> None:
    files = tuple(f for f in ClamAV().render(config) if f.path == FRESHCLAM_CONF)
    run = FakeRunner()
    done = ClamAV().reload(_change(config, files, running={"clamd", "freshclam"}), run)
    assert done == ["freshclam: restart"]
    assert run.calls == [("supervisorctl", "restart", "freshclam")]
    clamd = tuple(f for f in ClamAV().render(config) if f.path == CLAMD_CONF)
    assert ClamAV().reload(_change(config, clamd, running={"freshclam"}), run) == []


def test_webmail_reloads_nginx_and_php_fpm_gracefully(config: Config) -> None:
    run = FakeRunner({("supervisorctl", "signal", "USR2"): FAILED})
    done = Webmail().reload(_change(config, running={"nginx", "php-fpm"}), run)
    assert done == ["nginx: reload", "php-fpm: reload" + RELOAD_FAILED]
    assert run.calls == [("supervisorctl", "signal", "HUP", "nginx"),
                         ("supervisorctl", "signal", "USR2", "php-fpm")]


def _smtpd_json(config: Config, **changes: dict) -> RenderedFile:
    (f,) = Smtpd().render(config)
    data = json.loads(f.text)
    for daemon, settings in changes.items():
        data["daemons"][daemon].update(settings)
    return RenderedFile(f.path, json.dumps(data))


def test_smtpd_restarts_a_daemon_whose_listener_changed_and_hups_the_rest(
        config: Config) -> None:
    old = _smtpd_json(config)
    new = _smtpd_json(config, smtps={"port": 4465}, submission={"enabled": False})
    run = FakeRunner()
    done = Smtpd().reload(_change(config, (new,), previous={new.path: old.text}), run)
    assert done == ["smtpd-smtps: restart", "smtpd-smtp: reload"]
    assert run.calls == [("supervisorctl", "signal", "HUP", "smtpd-smtp"),
                         ("supervisorctl", "restart", "smtpd-smtps")]  # submission: off


def test_a_failed_hup_is_said(config: Config) -> None:
    f = _smtpd_json(config)
    run = FakeRunner({("supervisorctl", "signal", "HUP", "smtpd-smtps"): FAILED})
    done = Smtpd().reload(_change(config, (f,), previous={f.path: f.text}), run)
    assert "smtpd-smtps: reload" + RELOAD_FAILED in done
    assert {"smtpd-smtp: reload", "smtpd-submission: reload"} <= set(done)


def test_a_daemon_that_did_not_load_the_new_certificate_is_restarted(
        tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "SMTPD_TLS", tmp_path)
    monkeypatch.setattr("appliance.services.smtpd.SERVING_WAIT_S", 0.2)
    for daemon in ("smtp", "submission"):
        (tmp_path / f"serving-{daemon}").write_text("new\n")
    pair = CertificatePair("new", None, b"", b"")  # type: ignore[arg-type]
    run = FakeRunner()
    done = Smtpd().reload(_change(config, certificate=pair), run)  # no file changed
    assert done == ["smtpd-smtp: reload",
                    "smtpd-smtps: restart (the reload kept the old certificate)",
                    "smtpd-submission: reload"]
    assert run.calls[-1] == ("supervisorctl", "restart", "smtpd-smtps")


# --- apply's loop ----------------------------------------------------------------------

def _changes(config: Config, plan: Plan) -> dict[str, Change]:
    from appliance.apply import _changes

    return _changes(config, plan, Path("/nonexistent"))


def test_only_changed_services_are_told_and_in_the_registry_order(
        tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = tmp_path / "supervisor.sock"
    socket.touch()
    monkeypatch.setattr(paths, "SUPERVISOR_SOCKET", socket)
    p = Plan(changed={"smtpd": Smtpd().render(config), "postfix": Postfix().render(config),
                      "unbound": Unbound().render(config)})
    run = FakeRunner()
    done = reload_services(_changes(config, p), run)
    # the resolver first, the SMTP daemons last; with no smtpd.json before, a restart
    assert done == ["unbound: reload", "postfix: reload", "smtpd-smtp: restart",
                    "smtpd-smtps: restart", "smtpd-submission: restart"]
    assert not any(call[0] == "doveadm" for call in run.calls)


def test_a_new_certificate_reaches_every_tls_service_and_only_those(
        tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = tmp_path / "supervisor.sock"
    socket.touch()
    monkeypatch.setattr(paths, "SUPERVISOR_SOCKET", socket)
    monkeypatch.setattr(paths, "SMTPD_TLS", tmp_path)
    for daemon in ("smtp", "smtps", "submission"):
        (tmp_path / f"serving-{daemon}").write_text("fp\n")
    p = Plan(certificate=CertificatePair("fp", None, b"", b""))  # type: ignore[arg-type]
    changes = _changes(config, p)
    for change in changes.values():
        change.running = lambda: {"nginx", "php-fpm", "spamd", "clamd"}
    run = FakeRunner()
    done = reload_services(changes, run)
    assert done == ["dovecot: reload", "nginx: reload", "php-fpm: reload",
                    "smtpd-smtp: reload", "smtpd-smtps: reload", "smtpd-submission: reload"]
    told = {call[-1] for call in run.calls}
    assert not told & {"spamd", "clamd", "unbound"}


def test_nothing_is_told_before_supervisord_runs(
        tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "SUPERVISOR_SOCKET", tmp_path / "absent.sock")
    run = FakeRunner()
    p = Plan(changed={"postfix": Postfix().render(config)})
    assert reload_services(_changes(config, p), run) == [] and run.calls == []


# --- boot --------------------------------------------------------------------------------

def test_only_the_boot_removes_what_a_killed_container_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore prepares the folders while supervisord runs: its socket must stay."""
    from appliance.boot import clean_stale_runtime

    run = tmp_path / "run"
    for name, rel in (("SUPERVISOR_SOCKET", "appliance/supervisor.sock"),
                      ("SPAMD_SOCKET", "spamd/spamd.sock"), ("CLAMD_SOCKET", "clamav/clamd.ctl"),
                      ("UNBOUND_CONTROL", "unbound/control.sock"),
                      ("DOVECOT_PID", "dovecot/master.pid"),
                      ("TLS_IN_USE", "appliance/tls-in-use")):
        monkeypatch.setattr(paths, name, run / rel)
    Supervisord().prepare()
    stale = [paths.TLS_IN_USE] + [p for s in SERVICES for p in s.stale_runtime()]
    assert all(p.is_relative_to(run) for p in stale) and len(stale) == 8
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    Supervisord().prepare()
    assert paths.SUPERVISOR_SOCKET.exists()  # prepare keeps what runs
    clean_stale_runtime()
    assert not any(p.exists() for p in stale)
