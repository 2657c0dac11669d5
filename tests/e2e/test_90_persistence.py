"""`docker compose restart`, and `down` then `up`, lose nothing: the data volume keeps it all.

Runs last: it restarts and recreates the container the other tests use.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, ROOT, UP_TIMEOUT_S, Appliance
from tests.e2e.mail import imap_subjects, message, send_port25

ALICE = f"alice@{DOMAIN}"
HELD = "held-in-queue@unreachable.test"  # its MX never answers


@pytest.fixture(scope="module")
def before(appliance: Appliance) -> dict[str, object]:
    """State to find again: a delivered message, a queued one, the toml and TLS key."""
    msg = message("persist@remote.test", ALICE)
    assert send_port25(appliance.ip, msg) == {}
    appliance.exec("sh", "-c", f"printf 'Subject: held\\n\\nx\\n' | sendmail -f {ALICE} {HELD}")
    return {
        "subject": str(msg["Subject"]),
        "toml": appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout,
        "key": appliance.exec("sha256sum", "/var/lib/appliance/tls/key.pem").stdout,
    }


def _check(appliance: Appliance, before: dict[str, object]) -> None:
    from tests.e2e.conftest import wait_for

    wait_for(lambda: before["subject"] in imap_subjects(appliance.ip, "alice", ALICE_PASSWORD),
             30, "the delivered message")
    queued = [r["address"] for m in appliance.queue() for r in m["recipients"]]
    assert HELD in queued
    assert appliance.exec("cat", "/var/lib/appliance/appliance.toml").stdout == before["toml"]
    assert appliance.exec("sha256sum", "/var/lib/appliance/tls/key.pem").stdout == before["key"]


def test_restart_loses_nothing(appliance: Appliance, before: dict[str, object]) -> None:
    _check(appliance, before)
    appliance.compose("restart", "appliance")
    appliance.wait_healthy()
    _check(appliance, before)


TOML = "/var/lib/appliance/appliance.toml"
BROKEN_KEY = "system.hostname"


def _restart_with_broken_toml(appliance: Appliance, good: str) -> None:
    """Break appliance.toml as a hand edit would, then `docker compose restart`."""
    from tests.e2e.conftest import wait_for

    broken = good.replace('hostname = "mail"', 'hostname = "not a host!"')
    assert broken != good
    appliance.exec("sh", "-c", f"cat > {TOML}", input=broken)
    appliance.compose("restart", "appliance")
    # the container stays up (it crash-looped with exit 78), and exec works
    wait_for(lambda: appliance.exec("true", check=False).returncode == 0, 60,
             "`docker compose exec` into the restarted container")
    appliance.refresh_ip()


def _health_output(appliance: Appliance) -> str:
    import json

    out = subprocess.run(["docker", "inspect", "-f", "{{json .State.Health}}",
                          appliance.container], capture_output=True, text=True, check=True)
    return "".join(entry["Output"] for entry in json.loads(out.stdout)["Log"])


def _fix_and_apply(appliance: Appliance, good: str) -> str:
    appliance.exec("sh", "-c", f"cat > {TOML}", input=good)
    applied = appliance.exec("appliance", "apply").stdout
    appliance.wait_healthy()
    assert appliance.exec("appliance", "healthcheck", check=False).returncode == 0
    return applied


def test_a_broken_toml_at_restart_keeps_the_last_good_configuration_running(
        appliance: Appliance, before: dict[str, object]) -> None:
    from tests.e2e.conftest import wait_for

    good = str(before["toml"])
    _restart_with_broken_toml(appliance, good)
    # mail goes on with the last good settings: alice is still known and gets mail
    msg = message("after-a-bad-edit@remote.test", ALICE)
    wait_for(lambda: send_port25(appliance.ip, msg) == {}, 120, "port 25 to take mail")
    wait_for(lambda: str(msg["Subject"]) in imap_subjects(appliance.ip, "alice",
                                                          ALICE_PASSWORD),
             60, "the message sent after the bad edit")
    check = appliance.exec("appliance", "healthcheck", check=False)
    assert check.returncode == 1
    assert BROKEN_KEY in check.stderr and TOML in check.stderr
    assert "last good configuration" in check.stderr
    wait_for(lambda: BROKEN_KEY in _health_output(appliance), 60,
             "docker's healthcheck log to name the key")
    status = appliance.exec("appliance", "status", check=False)
    assert status.returncode == 1 and BROKEN_KEY in status.stdout
    # what `make up` says at its end: the problems, without failing
    said = subprocess.run(["make", "-s", "-C", str(ROOT), "problems",
                           "COMPOSE=" + " ".join(appliance.command)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert said.returncode == 0 and "reports problems" in said.stdout
    assert BROKEN_KEY in said.stdout
    logs = appliance.compose("logs", "appliance").stdout
    assert "appliance.toml is broken" in logs and "running the last good" in logs
    _fix_and_apply(appliance, good)


def test_a_broken_toml_with_no_good_copy_waits_with_the_admin_tools_up(
        appliance: Appliance, before: dict[str, object]) -> None:
    """As a first boot with a bad file: nothing to fall back on."""
    from tests.e2e.conftest import rcpt_answer, wait_for

    good = str(before["toml"])
    appliance.exec("rm", f"{TOML}.last-good")
    _restart_with_broken_toml(appliance, good)
    check = wait_for(lambda: (c := appliance.exec("appliance", "healthcheck", check=False))
                     .returncode == 1 and c, 60, "the healthcheck to answer")
    assert BROKEN_KEY in check.stderr and "no mail service runs" in check.stderr
    assert appliance.exec("supervisorctl", "status", check=False).stdout.strip() == ""
    with pytest.raises(OSError):
        rcpt_answer(appliance.ip, ALICE)
    applied = _fix_and_apply(appliance, good)  # no container restart
    assert "every service started" in applied
    wait_for(lambda: rcpt_answer(appliance.ip, ALICE)[0] == 250, 60, "port 25 to know alice")
    msg = message("after-the-fix@remote.test", ALICE)
    assert send_port25(appliance.ip, msg) == {}
    wait_for(lambda: str(msg["Subject"]) in imap_subjects(appliance.ip, "alice",
                                                          ALICE_PASSWORD),
             60, "the message sent after the fix")
    assert appliance.exec("cat", f"{TOML}.last-good").stdout == good


def test_down_then_up_loses_nothing(appliance: Appliance, before: dict[str, object]) -> None:
    appliance.compose("down")
    appliance.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S))
    appliance.container = appliance.compose("ps", "-q", "appliance").stdout.strip()
    appliance.wait_healthy()
    _check(appliance, before)
