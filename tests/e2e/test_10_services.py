"""The container runs what it should, listens where it should, and guards its secrets."""

from __future__ import annotations

import datetime
import imaplib
import socket

import pytest

from tests.e2e.conftest import CLIENT_IP, Appliance, wait_for
from tests.e2e.mail import TIMEOUT_S

PUBLIC_PORTS = (25, 465, 587, 143, 993, 110, 995, 80, 443, 4190)


@pytest.mark.parametrize(
    ("name", "user"),
    [
        ("tini", "root"),
        ("supervisord", "root"),
        ("master", "root"),  # Postfix
        ("dovecot", "root"),
    ],
)
def test_service_processes_run(host, name: str, user: str) -> None:
    procs = host.process.filter(comm=name)
    assert procs, f"{name} is not running"
    assert procs[0].user == user


def test_three_smtp_daemons_run_unprivileged(host) -> None:
    daemons = [p for p in host.process.filter(user="qpsmtpd") if "smtpd" in p.args]
    assert sorted(p.args.split()[-1] for p in daemons) == ["smtp", "smtps", "submission"]


def test_tini_is_pid_1(host) -> None:
    assert host.process.get(pid=1).comm == "tini"


@pytest.mark.parametrize("port", PUBLIC_PORTS)
def test_public_ports_listen(host, port: int) -> None:
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_postfix_handoff_listens_on_loopback_only(host, appliance: Appliance) -> None:
    assert host.socket("tcp://127.0.0.1:10025").is_listening
    with pytest.raises(OSError):
        socket.create_connection((appliance.ip, 10025), timeout=5).close()


def test_supervisor_reports_every_program_running(appliance: Appliance) -> None:
    status = appliance.exec("supervisorctl", "status").stdout
    programs = ("postfix", "dovecot", "smtpd-smtp", "smtpd-smtps", "smtpd-submission",
                "scheduler", "spamd", "clamd", "freshclam", "unbound", "nginx", "php-fpm",
                "security-policy", "autoconfig", "mta-sts-resolver")
    for program in programs:
        assert f"{program} " in status
    assert status.count("RUNNING") == len(programs), status


@pytest.mark.parametrize(
    ("path", "mode", "owner", "group"),
    [
        ("/var/lib/appliance/tls/key.pem", 0o600, "root", "root"),
        # the SMTP daemons' copy, which they re-read without root on a renewal
        ("/run/appliance/smtpd-tls/key.pem", 0o640, "root", "qpsmtpd"),
        ("/var/lib/appliance/appliance.toml", 0o600, "root", "root"),
        ("/etc/dovecot/appliance/users", 0o640, "root", "dovecot"),
        ("/etc/appliance/smtpd.json", 0o640, "root", "qpsmtpd"),
        ("/etc/postfix/appliance/smarthost_auth", 0o600, "root", "root"),
        ("/var/lib/appliance/mail", 0o700, "vmail", "vmail"),
    ],
)
def test_secrets_and_mail_are_not_world_readable(host, path: str, mode: int, owner: str,
                                                 group: str) -> None:
    f = host.file(path)
    assert f.exists
    assert f.mode == mode
    assert (f.user, f.group) == (owner, group)


def test_healthcheck_speaks_smtp_and_imap(appliance: Appliance) -> None:
    out = appliance.exec("appliance", "healthcheck")
    assert out.stdout.strip() == "healthy"


def test_the_healthcheck_writes_nothing_to_the_log(appliance: Appliance) -> None:
    """It runs every 5 s: an IMAP session or a Postfix connection each time made ~35 log
    lines a minute. A session of the test's own (from the internet) marks the end."""
    since = datetime.datetime.now(datetime.UTC).isoformat()
    for _ in range(3):
        assert appliance.exec("appliance", "healthcheck").stdout.strip() == "healthy"
    marker = imaplib.IMAP4(appliance.ip, 143, timeout=TIMEOUT_S)
    marker.logout()

    def logged() -> list[str]:
        return appliance.compose("logs", "--no-log-prefix", "--since", since,
                                 "appliance").stdout.splitlines()

    lines = wait_for(lambda: (out := logged()) and any(
        "imap-login" in line and f"rip={CLIENT_IP}," in line
        for line in out) and out, 30, "the marker session in the log")
    probes = [line for line in lines if "postfix/handoff" in line or "doveadm" in line
              or ("imap-login" in line and "rip=127.0.0.1" in line)]
    assert probes == []


@pytest.mark.parametrize(("program", "problem"), [
    ("postfix", "Postfix hand-off 127.0.0.1:10025: nothing listens"),
    ("dovecot", "IMAP 143: nothing listens"),
])
def test_the_healthcheck_fails_while_a_service_is_down(appliance: Appliance, program: str,
                                                       problem: str) -> None:
    def check() -> tuple[int, str]:
        proc = appliance.exec("appliance", "healthcheck", check=False)
        return proc.returncode, proc.stderr

    appliance.exec("supervisorctl", "stop", program)
    try:
        code, said = wait_for(lambda: (r := check())[0] != 0 and r, 30, f"{program} down")
        assert code == 1 and problem in said, said
    finally:
        appliance.exec("supervisorctl", "start", program)
    wait_for(lambda: check()[0] == 0, 60, "the healthcheck to pass again")


@pytest.mark.parametrize("editor", ["vi", "nano"])
def test_an_editor_is_there_for_appliance_toml(appliance: Appliance, editor: str) -> None:
    assert appliance.exec(editor, "--version").returncode == 0
    # login shells (`make shell`, `docker compose exec appliance bash -l`) name one
    assert appliance.exec("bash", "-lc", 'echo "$EDITOR"').stdout.strip() == "nano"
