"""tls.acme (appliance/certificates): which names, when an order is due, the backoff, the
state file, and the swap that keeps the old pair. The order itself is proven against a
real CA (pebble) in tests/e2e/test_81_acme.py; here a failed order is a real one too,
against a directory nothing serves."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from appliance import certificates, paths
from appliance.certificates import names, order, renew, state
from appliance.commands import scheduler
from appliance.config import parse
from appliance.services.webmail import Webmail, nginx_conf
from appliance.tls import ensure_self_signed

DOMAINS = """
[system]
hostname = "mail"
domain = "example.com"

[domains."example.org"]
"""


@pytest.fixture
def tls_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tls = tmp_path / "tls"
    monkeypatch.setattr(paths, "TLS_CERT", tls / "cert.pem")
    monkeypatch.setattr(paths, "TLS_KEY", tls / "key.pem")
    monkeypatch.setattr(paths, "ACME_DIR", tls / "acme")
    monkeypatch.setattr(paths, "TLS_PREVIOUS", tls / "previous")
    monkeypatch.setattr(paths, "ACME_CHALLENGES", tmp_path / "run" / "acme-challenge")
    return tls


def make_cert(names_: list[str], *, days: int = 90, started_days_ago: float = 0,
              key: rsa.RSAPrivateKey | None = None) -> tuple[bytes, bytes]:
    """A (cert, key) PEM pair signed by a throwaway CA, as an ACME CA's would be."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=started_days_ago)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names_[0])]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names_]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


# --- names --------------------------------------------------------------------------


def test_candidates_are_the_host_and_three_names_per_domain() -> None:
    host, extra = names.candidates(parse(DOMAINS))
    assert host == "mail.example.com"
    assert extra == ["mta-sts.example.com", "autoconfig.example.com",
                     "autodiscover.example.com", "mta-sts.example.org",
                     "autoconfig.example.org", "autodiscover.example.org"]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real HTTP server on loopback serving FOLDER at /.well-known/acme-challenge/, as
    nginx does: (the folder, its port)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            return str(folder / path.rsplit("/", 1)[-1])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_self_probe_keeps_only_names_that_hand_our_token_back(web: tuple[Path, int]) -> None:
    folder, port = web
    probe = names.http_probe(folder, port=port, timeout=2)
    # localhost reaches the server serving our folder; a .invalid name resolves nowhere
    assert names.select("mail.example.com", ["localhost", "nothing.invalid"], probe) == \
        ["mail.example.com", "localhost"]
    assert list(folder.iterdir()) == [], "the probe's token is removed"


def test_self_probe_refuses_a_server_that_is_not_us(web: tuple[Path, int],
                                                    tmp_path: Path) -> None:
    _, port = web  # answers, but from another folder: not our token
    probe = names.http_probe(tmp_path / "ours", port=port, timeout=2)
    assert names.select("mail.example.com", ["localhost"], probe) == ["mail.example.com"]


def test_a_listener_that_is_not_http_or_redirects_is_not_us(tmp_path: Path) -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer(reply: bytes) -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(reply)

        probe = names.http_probe(tmp_path / "ours", port=port, timeout=2)
        for reply in (b"SSH-2.0-OpenSSH_9.2\r\n",  # not HTTP: http.client's BadStatusLine
                      b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:8461/\r\n"
                      b"Content-Length: 0\r\n\r\n"):  # never followed
            thread = threading.Thread(target=answer, args=(reply,))
            thread.start()
            assert probe("localhost") is False
            thread.join()


def test_behind_a_nat_a_name_with_the_host_addresses_counts() -> None:
    config = parse(DOMAINS)
    records = {("mail.example.com", "A"): ["192.0.2.25"],
               ("mta-sts.example.com", "A"): ["192.0.2.25"],
               ("autoconfig.example.com", "A"): ["203.0.113.7"]}
    probe = names.address_probe(config, lambda name, rdtype: records.get((name, rdtype), []))
    assert [probe(n) for n in ("mta-sts.example.com", "autoconfig.example.com",
                               "autodiscover.example.com")] == [True, False, False]
    config = parse(DOMAINS + '\n[network]\npublic_addresses = ["203.0.113.7"]\n')
    probe = names.address_probe(config, lambda name, rdtype: records.get((name, rdtype), []))
    assert probe("autoconfig.example.com") and not probe("mta-sts.example.com")


def test_a_name_the_ca_refuses_is_dropped_and_the_host_still_gets_one(
        tls_paths: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA's side is pebble in the e2e test; here, the decision after its refusal."""
    ordered: list[list[str]] = []

    def issue(names_: list[str], **_: object) -> order.Issued:
        ordered.append(list(names_))
        if "mta-sts.example.com" in names_:
            raise order.OrderFailed("validation failed: mta-sts.example.com: CAA",
                                    ("mta-sts.example.com",))
        cert, key = make_cert(names_)
        return order.Issued(key, cert)

    monkeypatch.setattr(order, "issue", issue)
    tls_paths.mkdir()
    config = parse(DOMAINS + "\n[tls]\nacme = true\n")
    outcome = renew.renew(config, if_due=False, now=100.0,
                          probe=lambda name: name == "mta-sts.example.com")
    assert ordered == [["mail.example.com", "mta-sts.example.com"], ["mail.example.com"]]
    assert outcome.renewed and outcome.names == ["mail.example.com"]
    # the host itself refused: nothing to drop, the failure is recorded
    monkeypatch.setattr(order, "issue", lambda names_, **_: (_ for _ in ()).throw(
        order.OrderFailed("validation failed: mail.example.com", ("mail.example.com",))))
    with pytest.raises(order.OrderFailed):
        renew.renew(config, if_due=False, now=200.0, probe=lambda _: False)
    assert state.load(paths.ACME_DIR / state.STATE_FILE).failures == 1


def test_an_unexpected_error_is_a_recorded_failure_not_a_crash(
        tls_paths: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_probe(name: str) -> bool:
        raise RuntimeError("probe bug")

    config = parse(DOMAINS + "\n[tls]\nacme = true\n")
    with pytest.raises(order.OrderFailed, match="RuntimeError: probe bug"):
        renew.renew(config, if_due=False, now=100.0, probe=broken_probe)
    st = state.load(paths.ACME_DIR / state.STATE_FILE)
    assert st.failures == 1 and "probe bug" in st.last_error


def test_the_host_name_is_always_ordered() -> None:
    assert names.select("mail.example.com", ["mta-sts.example.com"], lambda _: False) == \
        ["mail.example.com"]


# --- when an order is due -----------------------------------------------------------


def test_a_certificate_not_from_the_ca_is_due(tmp_path: Path) -> None:
    ensure_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "mail.example.com",
                       "example.com")
    pem = (tmp_path / "c.pem").read_bytes()
    reason = renew.due(state.State(), pem, None, dt.datetime.now().timestamp())
    assert reason == "the certificate in place was not issued by the ACME CA"
    assert renew.due(state.State(), None, None, 0) == "no certificate"


def test_renewal_at_two_thirds_of_the_lifetime() -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    young, _ = make_cert(["mail.example.com"], days=90, started_days_ago=59)
    st = state.State(issued_fingerprint=renew.pem_fingerprint(young))
    assert renew.due(st, young, ["mail.example.com"], now) is None
    old, _ = make_cert(["mail.example.com"], days=90, started_days_ago=61)
    st = state.State(issued_fingerprint=renew.pem_fingerprint(old))
    assert "two thirds of its lifetime passed" in (renew.due(st, old, None, now) or "")
    cert = x509.load_pem_x509_certificate(old)
    assert renew.renewal_due_at(cert) == cert.not_valid_before_utc + dt.timedelta(days=60)


def test_a_new_name_makes_an_order_due_a_lost_one_waits_for_the_renewal() -> None:
    pem, _ = make_cert(["mail.example.com"])
    st = state.State(issued_fingerprint=renew.pem_fingerprint(pem))
    now = dt.datetime.now(dt.UTC).timestamp()
    assert renew.due(st, pem, ["mail.example.com", "mta-sts.example.com"], now) == \
        "new names: mta-sts.example.com"
    both, _ = make_cert(["mail.example.com", "mta-sts.example.com"])
    st = state.State(issued_fingerprint=renew.pem_fingerprint(both))
    # a probe that failed once must not reorder (and then reorder again when it answers)
    assert renew.due(st, both, ["mail.example.com"], now) is None


def test_backoff_holds_an_order_back_until_the_next_try() -> None:
    pem, _ = make_cert(["mail.example.com"])
    st = state.failed(state.State(), "the CA refused: no", now=1000.0)
    assert st.next_try == 1000.0 + state.FIRST_RETRY_S
    assert renew.due(st, pem, None, 1000.0 + 10) is None
    assert renew.due(st, pem, None, st.next_try) is not None


def test_backoff_doubles_up_to_a_day() -> None:
    assert [state.backoff_s(n) for n in range(0, 4)] == [0, 900, 1800, 3600]
    assert state.backoff_s(20) == state.MAX_RETRY_S == 86400
    st = state.State()
    for n in range(3):
        state.failed(st, f"failure {n}", now=0.0)
    assert (st.failures, st.next_try, st.last_error) == (3, 3600.0, "failure 2")
    state.succeeded(st, "ab", ["mail.example.com"], now=50.0, took_s=1.5)
    assert (st.failures, st.last_error, st.next_try) == (0, "", 0.0)


# --- the state file -----------------------------------------------------------------


def test_state_round_trips(tmp_path: Path) -> None:
    st = state.failed(state.State(names=["mail.example.com"]), "refused", now=5.0)
    state.save(tmp_path / "state.json", st)
    assert state.load(tmp_path / "state.json") == st
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_an_unreadable_state_is_a_fresh_one(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    assert state.load(f) == state.State()
    f.write_text("{torn")
    assert state.load(f) == state.State()
    f.write_text('{"failures": "three", "next_try": 7, "names": ["a"], "new_key": 1}')
    assert state.load(f) == state.State(next_try=7.0, names=["a"])


# --- the swap -----------------------------------------------------------------------


def test_swap_keeps_the_old_pair(tls_paths: Path) -> None:
    old_cert, old_key = make_cert(["mail.example.com"])
    tls_paths.mkdir()
    paths.TLS_CERT.write_bytes(old_cert)
    paths.TLS_KEY.write_bytes(old_key)
    new_cert, new_key = make_cert(["mail.example.com", "mta-sts.example.com"])
    pair = renew.swap(new_key, new_cert, ["mail.example.com", "mta-sts.example.com"])
    assert (paths.TLS_CERT.read_bytes(), paths.TLS_KEY.read_bytes()) == (new_cert, new_key)
    assert pair.cert_pem == new_cert
    assert (paths.TLS_PREVIOUS / "cert.pem").read_bytes() == old_cert
    assert (paths.TLS_PREVIOUS / "key.pem").read_bytes() == old_key
    assert paths.TLS_KEY.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", ["other key", "missing name", "expired", "not PEM"])
def test_a_bad_new_pair_leaves_the_old_one(tls_paths: Path, bad: str) -> None:
    old_cert, old_key = make_cert(["mail.example.com"])
    tls_paths.mkdir()
    paths.TLS_CERT.write_bytes(old_cert)
    paths.TLS_KEY.write_bytes(old_key)
    new_cert, new_key = make_cert(["mail.example.com"], days=90,
                                  started_days_ago=100 if bad == "expired" else 0)
    if bad == "other key":
        _, new_key = make_cert(["mail.example.com"])
    if bad == "not PEM":
        new_cert = b"<html>rate limited</html>"
    wanted = ["mail.example.com", "mta-sts.example.com"] if bad == "missing name" else \
        ["mail.example.com"]
    with pytest.raises(ValueError):
        renew.swap(new_key, new_cert, wanted)
    assert (paths.TLS_CERT.read_bytes(), paths.TLS_KEY.read_bytes()) == (old_cert, old_key)
    assert not paths.TLS_PREVIOUS.exists()


# --- a failed order -----------------------------------------------------------------


def test_a_failed_order_is_recorded_and_changes_no_certificate(tls_paths: Path) -> None:
    old_cert, old_key = make_cert(["mail.example.com"])
    tls_paths.mkdir()
    paths.TLS_CERT.write_bytes(old_cert)
    paths.TLS_KEY.write_bytes(old_key)
    config = parse(DOMAINS + '\n[tls]\nacme = true\n'
                   'acme_directory = "https://127.0.0.1:9/directory"\n')
    with pytest.raises(order.OrderFailed, match="cannot reach the ACME server"):
        renew.renew(config, if_due=False, now=100.0, probe=lambda _: False)
    assert (paths.TLS_CERT.read_bytes(), paths.TLS_KEY.read_bytes()) == (old_cert, old_key)
    st = state.load(paths.ACME_DIR / state.STATE_FILE)
    assert st.failures == 1 and st.next_try == 100.0 + state.FIRST_RETRY_S
    assert "cannot reach the ACME server" in st.last_error
    assert (paths.ACME_DIR / order.ACCOUNT_KEY).stat().st_mode & 0o777 == 0o600
    # the scheduler waits out the backoff; status says why
    assert renew.renew(config, if_due=True, now=200.0).message.startswith(
        "not due; after a failure")
    facts, problems = certificates.health(config)
    assert facts == ["ACME: https://127.0.0.1:9/directory"]
    assert len(problems) == 1 and "ACME order failed" in problems[0]
    assert "cannot reach the ACME server" in problems[0]


def test_acme_off_is_never_due(tls_paths: Path) -> None:
    outcome = renew.renew(parse(DOMAINS), if_due=True)
    assert (outcome.renewed, outcome.message) == (False, "tls.acme is off")
    assert certificates.health(parse(DOMAINS)) == ([], [])


# --- scheduler and nginx ------------------------------------------------------------


def test_the_scheduler_checks_for_renewal_while_acme_is_on(tmp_path: Path) -> None:
    f = tmp_path / "appliance.toml"
    f.write_text(DOMAINS)
    assert "cert-renew" not in [j.name for j in scheduler.jobs(0, f)]
    f.write_text(DOMAINS + "\n[tls]\nacme = true\n")
    job = next(j for j in scheduler.jobs(0, f) if j.name == "cert-renew")
    assert job.argv == ("cert", "renew", "--if-due")


def test_nginx_answers_challenges_on_80_before_the_redirect() -> None:
    conf = nginx_conf(parse(DOMAINS))
    port80 = conf.split("listen 80 default_server;")[1].split("listen 443")[0]
    challenge = port80.index("location ^~ /.well-known/acme-challenge/")
    assert challenge < port80.index("return 301 https://")
    assert f"alias {paths.ACME_CHALLENGES}/;" in port80
    # the redirect lives in a location now: a server-level return would answer first
    assert "        location / { return 301 https://$host$request_uri; }" in port80


def test_nginx_runs_for_acme_without_webmail() -> None:
    acme = parse(DOMAINS + "\n[webmail]\nenabled = false\n[tls]\nacme = true\n")
    assert [p.name for p in Webmail().programs(acme)] == ["nginx"]


def test_status_says_the_certificate_in_one_line() -> None:
    from appliance.status import Status, summary_lines

    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=60, hours=1)
    st = Status(certificate_expires=expires, certificate_subject="",
                certificate_issuer="CN=Pebble Intermediate CA 1",
                certificate_names=["mail.example.com", "mta-sts.example.com"])
    [line] = [x for x in summary_lines(st) if x.startswith("TLS")]
    assert line == ("TLS certificate for mail.example.com, mta-sts.example.com: CN=Pebble "
                    f"Intermediate CA 1, expires {expires:%Y-%m-%d} (in 60 days)")
    st.certificate_issuer = st.certificate_subject = "CN=mail.example.com"
    st.certificate_names = []
    assert "TLS certificate for CN=mail.example.com: self-signed, expires " in \
        "\n".join(summary_lines(st))
