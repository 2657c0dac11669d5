"""`appliance backup` then `appliance restore` into a fresh data volume keeps everything.

Runs last: it destroys the data volume (`down -v`) the other tests use, as a user
moving to a new machine would, and restores it through the documented commands.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    COMPOSE,
    DOMAIN,
    UP_TIMEOUT_S,
    Appliance,
    wait_for,
)
from tests.e2e.mail import imap_subjects, message, send_port25

ALICE = f"alice@{DOMAIN}"
HELD = "held-for-backup@unreachable.test"
DATA = "/var/lib/appliance"


def _state(appliance: Appliance) -> dict[str, str]:
    return {
        "toml": appliance.exec("cat", f"{DATA}/appliance.toml").stdout,
        "keys": appliance.exec("sh", "-c", f"sha256sum {DATA}/tls/key.pem "
                               f"{DATA}/dkim/default/private").stdout,
    }


def test_garbage_is_refused_and_nothing_changes(appliance: Appliance) -> None:
    before = _state(appliance)
    bad = subprocess.run([*COMPOSE, "exec", "-T", "appliance", "appliance", "restore"],
                         input=b"not an archive", capture_output=True, timeout=120)
    assert bad.returncode == 2 and b"not a backup archive" in bad.stderr
    assert _state(appliance) == before
    assert "smtpd-smtp" in appliance.exec("appliance", "status").stdout


def test_backup_restores_into_a_fresh_volume(appliance: Appliance, tmp_path: Path) -> None:
    msg = message("backup@remote.test", ALICE)
    assert send_port25(appliance.ip, msg) == {}
    wait_for(lambda: str(msg["Subject"]) in imap_subjects(appliance.ip, "alice",
                                                          ALICE_PASSWORD), 30, "delivery")
    appliance.exec("sh", "-c", f"printf 'Subject: held\\n\\nx\\n' | sendmail -f {ALICE} {HELD}")
    appliance.exec("appliance", "config", "set", "smtpd.greeting", "restored-greeting")
    before = _state(appliance)

    archive = tmp_path / "backup.tar.gz"
    with archive.open("wb") as out:  # the README's command, stdout to a host file
        subprocess.run([*COMPOSE, "exec", "-T", "appliance", "appliance", "backup"],
                       stdout=out, check=True, timeout=300)
    assert archive.stat().st_size > 1000

    appliance.compose("down", "-v")  # the data volume is gone
    appliance.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S))
    appliance.container = appliance.compose("ps", "-q", "appliance").stdout.strip()
    appliance.wait_healthy()
    assert _state(appliance) != before  # a brand-new appliance: no alice, new keys

    with archive.open("rb") as src:
        restored = subprocess.run([*COMPOSE, "exec", "-T", "appliance", "appliance",
                                   "restore"], stdin=src, capture_output=True, timeout=300)
    assert restored.returncode == 0, restored.stderr
    appliance.wait_healthy()
    assert _state(appliance) == before
    wait_for(lambda: str(msg["Subject"]) in imap_subjects(appliance.ip, "alice",
                                                          ALICE_PASSWORD), 30,
             "alice's mail, with her password, after the restore")
    assert HELD in [r["address"] for m in appliance.queue() for r in m["recipients"]]
    banner = wait_for(lambda: _greeting(appliance.ip), 30, "port 25 after the restore")
    assert "restored-greeting" in banner


def _greeting(ip: str) -> str:
    import socket

    with socket.create_connection((ip, 25), timeout=15) as s:
        return s.recv(512).decode()
