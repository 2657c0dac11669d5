"""Dovecot's auth policy server, driven over a real unix socket with requests shaped as
Dovecot 2.4.1 sends them (src/auth/auth-policy.c, src/lib-http/http-client-request.c:
through `http_client_proxy_socket_path` the target is the absolute URL; the JSON's
keys are the sorted request attributes, then success and policy_reject (report only),
then tls), and an injected clock for the store."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from appliance import paths
from appliance.config import Config, parse
from appliance.config.default import default_toml
from appliance.security import policy
from appliance.security.bans import BanStore, Rules, failure_delay
from appliance.security.policy import PolicyServer, bind_socket
from appliance.services import dovecot, webmail
from appliance.services.base import Change, Completed
from appliance.services.registry import SERVICES
from appliance.services.security import Security, render
from tests.clock import Clock

RULES = Rules(enabled=True, max_failures=4, find_time=600, ban_time=3600,
              max_ban_time=86400, failure_delay=1.0, account_failures=5,
              account_delay=3.0, never_ban=("127.0.0.0/8",))
ATTACKER = "198.51.100.9"




@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> BanStore:
    return BanStore(tmp_path / "bans.sqlite", RULES, clock)


@pytest.fixture
def server(tmp_path: Path, store: BanStore,
           clock: Clock) -> Iterator[tuple[PolicyServer, Path]]:
    path = tmp_path / "policy.sock"
    srv = PolicyServer(store, clock)
    srv.start(bind_socket(path))
    yield srv, path
    srv.stop()


def attributes(remote: str = ATTACKER, login: str = "alice", protocol: str = "imap",
               fail_type: str = "") -> dict[str, object]:
    # auth_policy_request_attributes as the appliance renders them, with 2.4.1's
    # defaults beside them (device_id, pwhash), sorted by key as Dovecot sorts them
    return {"device_id": "", "fail_type": fail_type, "login": login,
            "protocol": protocol, "pwhash": "0a1b2c", "remote": remote,
            "session_id": "k2Ru3Yg4NrjAqQrW", "tls": True}


def report(success: bool, fail_type: str, policy_reject: bool = False,
           **kw: str) -> dict[str, object]:
    body = attributes(fail_type=fail_type, **kw)
    tls = body.pop("tls")
    return {**body, "success": success, "policy_reject": policy_reject, "tls": tls}


def dovecot_request(command: str, body: dict[str, object]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST http://security-policy/?command={command} HTTP/1.1\r\n"
            "Host: security-policy\r\n"
            "Date: Tue, 03 Jun 2025 10:00:00 GMT\r\n"
            "User-Agent: dovecot/auth-policy-client\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Content-Type: application/json\r\n"
            "\r\n").encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return status, headers, json.loads(body)


class Client:
    """One kept-alive connection, as Dovecot's HTTP client keeps it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, raw: bytes) -> tuple[int, dict[str, str], dict]:
        self.writer.write(raw)
        await self.writer.drain()
        return await read_response(self.reader)

    async def ask(self, command: str, body: dict[str, object]) -> dict:
        status, _, answer = await self.send(dovecot_request(command, body))
        assert status == 200
        return answer

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    def close(self) -> None:
        self.writer.close()


async def connect(path: Path) -> Client:
    return Client(*await asyncio.open_unix_connection(str(path)))


async def test_a_clean_address_is_allowed_at_once(server) -> None:
    client = await connect(server[1])
    assert await client.ask("allow", attributes()) == {"status": 0, "msg": ""}
    client.close()


async def test_failures_are_counted_then_the_address_is_refused_with_the_reason(
        server, store: BanStore, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="appliance.security.policy")
    client = await connect(server[1])
    for _ in range(RULES.max_failures):
        clock.now += 10
        assert await client.ask("report", report(False, "credentials")) == {"status": 0}
    clock.now += 10
    ban = store.banned(ATTACKER)
    assert ban is not None and ban.protocol == "imap" and ban.account == "alice"
    assert any(f"banned {ATTACKER} for 1h after imap user=<alice>" in r.getMessage()
               for r in caplog.records)
    answer = await client.ask("allow", attributes(protocol="pop3", login="bob"))
    assert answer["status"] == -1
    assert answer["msg"] == (f"Your address {ATTACKER} is banned (4 failed logins in "
                             "10m): try again in 59m 50s")
    assert not answer["msg"].startswith("[")  # Dovecot adds [ALERT] only then
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert refused == [f"refused {ATTACKER} pop3 user=<bob>: banned (4 failed logins in 10m)"]
    clock.now += 3590
    assert (await client.ask("allow", attributes()))["status"] == 0  # the ban expired
    client.close()


async def test_a_manual_ban_is_refused_until_lifted(server, store: BanStore) -> None:
    store.add("198.51.100.0/24", None)
    client = await connect(server[1])
    answer = await client.ask("allow", attributes(protocol="sieve"))
    assert answer == {"status": -1, "msg": f"Your address {ATTACKER} is banned (banned by "
                      "the administrator): until the administrator lifts it"}
    store.remove("198.51.100.0/24")
    assert (await client.ask("allow", attributes()))["status"] == 0
    client.close()


async def test_recent_failures_make_the_next_attempt_wait_the_growing_delay(
        server, clock: Clock) -> None:
    client = await connect(server[1])
    delays = []
    for _ in range(3):
        delays.append((await client.ask("allow", attributes()))["status"])
        await client.ask("report", report(False, "account", login="nobody"))
        clock.now += 1
    delays.append((await client.ask("allow", attributes()))["status"])
    # what the 1st..4th failure waits in BanStore.failed: 0, 1, 2, 4 s
    assert delays == [0, 1, 2, 4] == [failure_delay(RULES, n) for n in range(1, 5)]
    clock.now += RULES.find_time
    assert (await client.ask("allow", attributes()))["status"] == 0
    client.close()


async def test_an_account_under_attack_is_slowed_from_every_address(
        server, clock: Clock) -> None:
    client = await connect(server[1])
    for n in range(RULES.account_failures + 1):  # from many addresses: none banned
        await client.ask("report", report(False, "credentials", remote=f"203.0.113.{n}"))
        clock.now += 1
    local = await client.ask("allow", attributes(remote="127.0.0.1", login="alice"))
    assert local["status"] == 0  # a local network is never slowed (webmail sessions)
    owner = await client.ask("allow", attributes(remote="192.0.2.44", login="alice"))
    assert owner["status"] == RULES.account_delay  # slowed, never refused
    other = await client.ask("allow", attributes(remote="192.0.2.44", login="carol"))
    assert other["status"] == 0
    client.close()


@pytest.mark.parametrize("body", [
    report(True, ""),  # a success never counts
    report(False, "policy", policy_reject=True),  # refused by us: no password tried
    report(False, "internal"),  # Dovecot's own failure, not the client's
    report(False, "disabled"),  # a correct password of an account that may not log in
])
async def test_only_a_wrong_password_or_unknown_user_counts(server, store: BanStore,
                                                            body: dict) -> None:
    client = await connect(server[1])
    for _ in range(RULES.max_failures + 1):
        assert await client.ask("report", body) == {"status": 0}
    assert store.banned(ATTACKER) is None
    assert store.next_delay(ATTACKER) == 0
    client.close()


async def test_local_networks_are_never_refused_nor_slowed(server, store: BanStore) -> None:
    client = await connect(server[1])
    for _ in range(RULES.max_failures + 1):
        await client.ask("report", report(False, "credentials", remote="127.0.0.1"))
    assert await client.ask("allow", attributes(remote="127.0.0.1")) == {"status": 0,
                                                                         "msg": ""}
    client.close()


async def test_with_security_disabled_nothing_is_counted_or_refused(
        tmp_path: Path, clock: Clock) -> None:
    store = BanStore(tmp_path / "off.sqlite", replace(RULES, enabled=False), clock)
    store.add(ATTACKER, None)
    srv = PolicyServer(store, clock)
    path = tmp_path / "off.sock"
    srv.start(bind_socket(path))
    client = await connect(path)
    assert (await client.ask("allow", attributes()))["status"] == 0
    await client.ask("report", report(False, "credentials", remote="203.0.113.80"))
    assert store.next_delay("203.0.113.80") == 0
    client.close()
    srv.stop()


async def test_origin_form_targets_and_the_rules_of_a_new_store(server, tmp_path: Path,
                                                                clock: Clock) -> None:
    """A policy server URL without the proxy socket (origin form); SIGHUP's new rules
    take effect for the next request."""
    srv, path = server
    client = await connect(path)
    raw = dovecot_request("allow", attributes()).replace(
        b"POST http://security-policy/?command=allow", b"POST /?command=allow")
    status, headers, answer = await client.send(raw)
    assert status == 200 and headers["content-type"] == "application/json"
    assert answer["status"] == 0
    srv.replace_store(BanStore(tmp_path / "bans.sqlite", replace(RULES, max_failures=2),
                               clock))
    for _ in range(2):
        await client.ask("report", report(False, "credentials"))
    assert (await client.ask("allow", attributes()))["status"] == -1
    client.close()


@pytest.mark.parametrize("raw, status", [
    (b"GET /?command=allow HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"POST /?command=allow HTTP/1.1\r\nHost: x\r\n\r\n", 411),  # no Content-Length
    (b"POST /?command=allow HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /?command=other HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400),
    (b"POST /?command=allow HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]", 400),
    (b"POST /?command=allow HTTP/1.1\r\nContent-Length: 4\r\n\r\nnope", 400),
    (b"POST /?command=allow HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /?command=allow HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"POST /?command=allow HTTP/1.1\r\nbroken header\r\n\r\n", 400),
    (b"POST /?command=allow HTTP/1.1\nContent-Length: 2\n\n{}", 400),  # bare LF
    (b"POST /?command=allow SPDY/3\r\nContent-Length: 2\r\n\r\n{}", 400),
    (b"POST /?command=allow HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (b"POST /?command=allow HTTP/1.1\r\n" + b"X-A: b\r\n" * 60 + b"\r\n", 431),
])
async def test_bad_requests_are_answered_and_the_connection_closed(
        server, raw: bytes, status: int) -> None:
    client = await connect(server[1])
    got, headers, answer = await client.send(raw)
    assert got == status and headers["connection"] == "close" and "error" in answer
    assert await client.closed()
    client.close()


async def test_a_request_that_stalls_is_answered_400_by_its_deadline(
        server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "READ_TIMEOUT_S", 0.2)
    client = await connect(server[1])
    client.writer.write(b"POST /?command=allow HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
    status, _, answer = await read_response(client.reader)
    assert status == 400 and answer == {"error": "request too slow"}
    assert await client.closed()
    client.close()


async def test_an_idle_kept_alive_connection_is_closed(
        server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "IDLE_TIMEOUT_S", 0.2)
    client = await connect(server[1])
    assert (await client.ask("allow", attributes()))["status"] == 0
    assert await client.closed()  # nothing sent: closed without an answer
    client.close()


async def test_a_broken_store_lets_the_login_go_on(tmp_path: Path, clock: Clock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "missing"  # no such folder: sqlite cannot open the file
    srv = PolicyServer(BanStore(folder / "bans.sqlite", RULES, clock), clock)
    path = tmp_path / "broken.sock"
    srv.start(bind_socket(path))
    client = await connect(path)
    assert await client.ask("allow", attributes()) == {"status": 0, "msg": ""}
    assert await client.ask("report", report(False, "credentials")) == {"status": 0, "msg": ""}
    assert any("the login goes on unchecked" in r.getMessage() for r in caplog.records)
    client.close()
    srv.stop()


def test_the_socket_is_for_its_owner_and_group_only(tmp_path: Path) -> None:
    sock = bind_socket(tmp_path / "p.sock")
    assert (tmp_path / "p.sock").stat().st_mode & 0o777 == 0o660
    sock.close()
    sock = bind_socket(tmp_path / "p.sock")  # a stale socket is replaced
    sock.close()


# -- what the appliance renders around it ------------------------------------------------

def _config() -> Config:
    return parse(default_toml())


def test_dovecot_asks_the_policy_server_over_its_socket_and_never_fails_closed() -> None:
    conf = dovecot.dovecot_conf(_config())
    for line in ("auth_policy_server_url = http://security-policy/",
                 f"  http_client_proxy_socket_path = {paths.SECURITY_POLICY_SOCKET}",
                 "auth_policy_reject_on_fail = no",
                 "auth_policy_check_before_auth = yes",
                 "auth_policy_check_after_auth = no",
                 "auth_policy_report_after_auth = yes",
                 "  login = %{requested_username}", "  remote = %{remote_ip}",
                 "  protocol = %{protocol}", "  fail_type = %{fail_type}"):
        assert f"\n{line}\n" in conf
    assert "\nauth_policy_hash_nonce = " in conf  # Dovecot refuses a policy URL without


def test_only_loopback_may_pass_on_the_clients_address() -> None:
    """The webmail's IMAP ID x-originating-ip is believed from loopback only: never the
    docker network, whose gateway is every published port's client."""
    conf = dovecot.dovecot_conf(_config())
    trusted = [line for line in conf.splitlines() if line.startswith("login_trusted_networks")]
    assert trusted == ["login_trusted_networks = 127.0.0.1/32 ::1/128"]


def test_the_webmail_passes_the_browsers_address_on() -> None:
    conf = {f.path: f.text for f in webmail.render(_config())}[webmail.ROUNDCUBE_CONF]
    assert "'login_address'" in conf
    # only REMOTE_ADDR (nginx's) is believed, no X-Forwarded-For
    assert "proxy_whitelist" not in conf


def test_supervisord_runs_the_policy_server_before_dovecot() -> None:
    programs = {p.name: p for s in SERVICES for p in s.programs(_config())}
    assert programs["security-policy"].command.endswith("appliance security-policy")
    assert programs["security-policy"].priority < programs["dovecot"].priority


def test_new_rules_reach_the_running_policy_server_by_sighup() -> None:
    calls: list[tuple[str, ...]] = []

    def run(*argv: str, timeout: float = 60) -> Completed:
        calls.append(argv)
        return Completed(0)

    config = _config()
    files = tuple(render(config))
    change = Change(config, files, frozenset({paths.SECURITY_JSON}), {},
                    running=lambda: {"security-policy", "dovecot"})
    assert Security().reload(change, run) == ["security-policy: reload"]
    assert calls == [("supervisorctl", "signal", "HUP", "security-policy")]
    calls.clear()
    unchanged = Change(config, (), frozenset({"/etc/dovecot/dovecot.conf"}), {},
                       running=lambda: {"security-policy"})
    assert Security().reload(unchanged, run) == [] and calls == []
