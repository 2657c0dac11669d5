"""`docker compose restart`, and `down` then `up`, lose nothing: the data volume keeps it all.

Runs last: it restarts and recreates the container the other tests use.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, UP_TIMEOUT_S, Appliance
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


def test_down_then_up_loses_nothing(appliance: Appliance, before: dict[str, object]) -> None:
    appliance.compose("down")
    appliance.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S))
    appliance.container = appliance.compose("ps", "-q", "appliance").stdout.strip()
    appliance.wait_healthy()
    _check(appliance, before)
