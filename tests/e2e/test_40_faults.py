"""Faults: killed daemons come back, bad config is refused, a dead queue never gets a 250."""

from __future__ import annotations

import smtplib
import socket

import pytest

from appliance.smtpd import replies
from tests.e2e.conftest import DOMAIN, Appliance, wait_for
from tests.e2e.mail import TIMEOUT_S, message, send_port25

ALICE = f"alice@{DOMAIN}"


def _pid(appliance: Appliance, program: str) -> int:
    out = appliance.exec("supervisorctl", "pid", program).stdout.strip()
    return int(out) if out.isdigit() else 0


def _smtp_answers(appliance: Appliance) -> bool:
    with smtplib.SMTP(appliance.ip, 25, timeout=5) as s:
        return s.ehlo("probe.test")[0] == 250


def test_supervisord_restarts_a_killed_smtp_daemon(appliance: Appliance) -> None:
    old = _pid(appliance, "smtpd-smtp")
    assert old > 0
    appliance.exec("kill", "-9", str(old))
    wait_for(lambda: _pid(appliance, "smtpd-smtp") not in (0, old), 30, "a new smtpd-smtp")
    wait_for(lambda: _smtp_answers(appliance), 30, "port 25 to answer again")
    assert send_port25(appliance.ip, message("a@remote.test", ALICE)) == {}


def test_bad_toml_is_refused_by_apply_and_the_running_service_keeps_working(
    appliance: Appliance,
) -> None:
    path = "/var/lib/appliance/appliance.toml"
    good = appliance.exec("cat", path).stdout
    bad = good.replace("instances = 40", "instances = -1", 1)
    assert bad != good
    appliance.exec("sh", "-c", f"cat > {path}", input=bad)
    try:
        proc = appliance.exec("appliance", "apply", check=False)
        assert proc.returncode != 0
        assert "smtpd.smtp.instances = -1" in proc.stderr
        assert "from 1 to 10000" in proc.stderr
        # the generated files and the daemons still run the previous settings
        assert '"instances": 40' in appliance.exec("cat", "/etc/appliance/smtpd.json").stdout
        assert send_port25(appliance.ip, message("b@remote.test", ALICE)) == {}
    finally:
        appliance.exec("sh", "-c", f"cat > {path}", input=good)
    assert appliance.exec("appliance", "apply").returncode == 0


def test_broken_toml_syntax_names_the_line(appliance: Appliance) -> None:
    path = "/var/lib/appliance/appliance.toml"
    good = appliance.exec("cat", path).stdout
    appliance.exec("sh", "-c", f"cat > {path}", input=good + "\n[smtpd\n")
    try:
        proc = appliance.exec("appliance", "check", check=False)
        assert proc.returncode != 0
        assert "not valid TOML" in proc.stderr
        assert f"{path}:{good.count(chr(10)) + 2}" in proc.stderr
    finally:
        appliance.exec("sh", "-c", f"cat > {path}", input=good)


def test_with_postfix_down_mail_is_deferred_never_acknowledged(appliance: Appliance) -> None:
    appliance.exec("supervisorctl", "stop", "postfix")
    try:
        wait_for(lambda: "127.0.0.1:10025" not in appliance.exec("ss", "-ltn").stdout, 30,
                 "Postfix to stop listening")
        with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
            s.ehlo("sender.test")
            s.mail("c@remote.test")
            s.rcpt(ALICE)
            code, text = s.data(message("c@remote.test", ALICE).as_string())  # CRLF
        assert (code, text.decode()) == (451, replies.HANDOFF_UNAVAILABLE[4:])
    finally:
        appliance.exec("supervisorctl", "start", "postfix")
    wait_for(lambda: "127.0.0.1:10025" in appliance.exec("ss", "-ltn").stdout, 30,
             "Postfix to listen again")
    assert send_port25(appliance.ip, message("d@remote.test", ALICE)) == {}


def test_bare_lf_in_data_is_refused(appliance: Appliance) -> None:
    with socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S) as sock:
        f = sock.makefile("rwb")

        def say(line: bytes) -> bytes:
            f.write(line)
            f.flush()
            reply = f.readline()
            while reply[3:4] == b"-":
                reply = f.readline()
            return reply

        assert f.readline().startswith(b"220")
        assert say(b"EHLO smuggler.test\r\n").startswith(b"250")
        assert say(b"MAIL FROM:<e@remote.test>\r\n").startswith(b"250")
        assert say(f"RCPT TO:<{ALICE}>\r\n".encode()).startswith(b"250")
        assert say(b"DATA\r\n").startswith(b"354")
        reply = say(b"Subject: x\r\n\r\nhi\n.\r\nMAIL FROM:<evil@remote.test>\r\n.\r\n")
    assert reply.decode().rstrip("\r\n") == replies.BARE_CR_LF


def test_more_than_instances_per_ip_connections_get_421(appliance: Appliance) -> None:
    held = []
    try:
        for _ in range(5):  # SME's InstancesPerIP default
            s = socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S)
            held.append(s)
            assert s.recv(512).startswith(b"220")
        extra = socket.create_connection((appliance.ip, 25), timeout=TIMEOUT_S)
        held.append(extra)
        assert extra.recv(512).decode().rstrip() == replies.TOO_MANY_FROM_ADDRESS
    finally:
        for s in held:
            s.close()
    wait_for(lambda: _smtp_answers(appliance), 15, "a new connection to be accepted")


@pytest.mark.parametrize("size", [15_000_001])
def test_declared_oversize_is_refused_at_mail(appliance: Appliance, size: int) -> None:
    with smtplib.SMTP(appliance.ip, 25, timeout=TIMEOUT_S) as s:
        s.ehlo("sender.test")
        assert s.esmtp_features["size"] == "15000000"
        code, _ = s.mail("f@remote.test", [f"SIZE={size}"])
    assert code == 552
