"""The container runs what it should, listens where it should, and guards its secrets."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.conftest import Appliance

PUBLIC_PORTS = (25, 465, 587, 143, 993, 110, 995, 80, 443)


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
                "scheduler", "spamd", "clamd", "freshclam", "unbound", "nginx", "php-fpm")
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
