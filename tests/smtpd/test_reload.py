"""SIGHUP: Daemon.reload() re-reads the settings file without dropping anything."""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
import ssl
from pathlib import Path

import pytest

from appliance.smtpd import main, replies
from appliance.smtpd.auth import hash_password
from appliance.tls import ensure_self_signed, fingerprint
from tests.smtpd.conftest import StartDaemon
from tests.smtpd.support import QUEUE_ID, FakePostfix, RawClient, in_thread, port, send
from tests.tls_pairs import ecdsa_pair

QUEUED = replies.QUEUED.format(queue_id=QUEUE_ID)


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where reload() reads from. read_settings()'s default path is bound when main.py is
    imported (from appliance.paths.SMTPD_CONFIG), so point the default itself here."""
    path = tmp_path / "smtpd.json"
    monkeypatch.setattr(main.read_settings, "__defaults__", (path,))
    return path


async def test_reload_accepts_a_newly_added_user_on_the_running_daemon(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, settings_file: Path
) -> None:
    daemon = await start_daemon("smtp")
    server = daemon.server
    unknown = replies.USER_UNKNOWN.format(address="carol@example.com")
    before = await in_thread(send, port(daemon), "sender@example.net", ["carol@example.com"])
    assert before.rcpts == [unknown]

    # A session open across the reload keeps working.
    c = await RawClient.connect(port(daemon))
    try:
        await c.read_line()
        new = daemon.settings.to_dict()
        new["users"]["carol"] = hash_password("carol's password", rounds=4)
        new["addresses"]["carol@example.com"] = ["carol@example.com"]
        settings_file.write_text(json.dumps(new), encoding="utf-8")

        daemon.reload()

        assert daemon.server is server and server.is_serving()
        assert "carol" in daemon.handler.state.settings.users
        assert await c.command("NOOP") == replies.OK
        await c.command("QUIT")
    finally:
        await c.close()

    after = await in_thread(send, port(daemon), "sender@example.net", ["carol@example.com"])

    assert after.rcpts == [replies.OK_RECIPIENT]
    assert after.data == QUEUED
    [got] = fake_postfix.messages
    assert got.rcpt_tos == ["carol@example.com"]


async def test_reload_removing_a_user_refuses_them_afterwards(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, settings_file: Path
) -> None:
    daemon = await start_daemon("smtp")
    new = daemon.settings.to_dict()
    del new["users"]["bob"]
    del new["addresses"]["bob@example.com"]
    settings_file.write_text(json.dumps(new), encoding="utf-8")

    daemon.reload()
    out = await in_thread(send, port(daemon), "sender@example.net", ["bob@example.com"])

    assert out.rcpts == [replies.USER_UNKNOWN.format(address="bob@example.com")]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="bad-json"),
        pytest.param(None, id="missing-file"),
        pytest.param("unknown-plugin", id="bad-plugin"),
    ],
)
async def test_failed_reload_keeps_the_running_settings(
    start_daemon: StartDaemon, fake_postfix: FakePostfix, settings_file: Path,
    content: str | None,
) -> None:
    daemon = await start_daemon("smtp")
    state, settings = daemon.handler.state, daemon.settings
    if content == "unknown-plugin":
        bad = daemon.settings.to_dict()
        bad["plugin_settings"]["relay"]["relay_clients"] = ["not-a-network"]
        bad["users"] = {}
        settings_file.write_text(json.dumps(bad), encoding="utf-8")
    elif content is not None:
        settings_file.write_text(content, encoding="utf-8")

    daemon.reload()

    assert daemon.handler.state is state and daemon.settings is settings
    out = await in_thread(send, port(daemon), "sender@example.net", ["alice@example.com"])
    assert out.data == QUEUED


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # a self-signed certificate: TLS, unchecked
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def served_certificate(daemon_port: int, starttls: bool) -> bytes:
    """The certificate a new session gets: at once (465) or after STARTTLS (25, 587)."""
    ctx = unverified()
    if not starttls:
        with socket.create_connection(("127.0.0.1", daemon_port), 10) as raw, \
                ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)
    with smtplib.SMTP("127.0.0.1", daemon_port, timeout=10) as client:
        client.starttls(context=ctx)
        return client.sock.getpeercert(binary_form=True)


def der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def serving(folder: Path, name: str) -> str:
    return (folder / f"serving-{name}").read_text().strip()


@pytest.mark.parametrize("name", ["smtps", "smtp"])
@pytest.mark.parametrize("renewal", ["rsa", "ecdsa"])
async def test_reload_serves_a_new_certificate_and_open_sessions_keep_going(
    start_daemon: StartDaemon, settings_file: Path, tmp_path: Path, name: str, renewal: str,
    tls_files: tuple[Path, Path],
) -> None:
    """A renewed certificate (apply sends SIGHUP) is served to new sessions on 465 and
    after STARTTLS, without a restart: a session open across it carries on. From the
    first boot's RSA to ECDSA too, where loading into the old context kept the RSA one."""
    daemon = await start_daemon(name)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(tls_files[0], cert)
    shutil.copy(tls_files[1], key)
    settings = daemon.settings.to_dict()
    settings["tls"] = {"cert": str(cert), "key": str(key), "report_dir": str(tmp_path)}
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    starttls = name != "smtps"
    open_session = smtplib.SMTP_SSL if not starttls else smtplib.SMTP
    kwargs = {} if starttls else {"context": unverified()}
    client = await in_thread(lambda: open_session("127.0.0.1", port(daemon), timeout=10,
                                                  **kwargs))
    try:
        daemon.reload()  # the same pair at a new path: the same certificate
        assert await in_thread(served_certificate, port(daemon), starttls) == der(tls_files[0])
        assert serving(tmp_path, name) == fingerprint(cert.read_bytes(), key.read_bytes())

        cert.unlink()
        key.unlink()
        if renewal == "rsa":
            ensure_self_signed(cert, key, "renewed.example.com", "example.com")
        else:
            ecdsa_pair(cert, key, "renewed.example.com")
        daemon.reload()

        assert await in_thread(served_certificate, port(daemon), starttls) == der(cert)
        assert serving(tmp_path, name) == fingerprint(cert.read_bytes(), key.read_bytes())
        assert (await in_thread(client.noop))[0] == 250
    finally:
        await in_thread(client.quit)


async def test_a_new_certificate_without_its_key_leaves_the_one_in_use(
    start_daemon: StartDaemon, settings_file: Path, tmp_path: Path,
    tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture,
) -> None:
    """As when a renewal has written the certificate and not yet the key: refused, the
    old pair still served, and the new one not reported (apply then restarts the daemon)."""
    daemon = await start_daemon("smtps")
    other_cert, other_key = tmp_path / "other-cert.pem", tmp_path / "other-key.pem"
    ensure_self_signed(other_cert, other_key, "other.example.com", "example.com")
    settings = daemon.settings.to_dict()
    settings["tls"] = {"cert": str(other_cert), "key": str(tls_files[1]),  # not its key
                       "report_dir": str(tmp_path)}
    settings_file.write_text(json.dumps(settings), encoding="utf-8")

    daemon.reload()

    assert await in_thread(served_certificate, port(daemon), False) == der(tls_files[0])
    assert "keeping the certificate in use" in caplog.text
    assert not (tmp_path / "serving-smtps").exists()  # it reports only what it serves
    # and the daemon still serves TLS at all (a half-loaded context would not)
    assert await in_thread(served_certificate, port(daemon), False) == der(tls_files[0])
