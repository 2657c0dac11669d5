"""Client autoconfig: the documents built from the settings (Thunderbird, Outlook, Apple),
the autodiscover request parser against bad and hostile bodies, and the server over a
real Unix socket."""

from __future__ import annotations

import http.client
import json
import plistlib
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.autoconfig import documents, server
from appliance.autoconfig.documents import (
    OUTLOOK_NS,
    REQUEST_NS,
    RESPONSE_NS,
    BadRequest,
    Site,
    UnknownDomain,
)
from appliance.config import Config, parse
from appliance.config.default import default_toml
from appliance.security.policy import bind_socket
from appliance.services import autoconfig, webmail
from appliance.services.registry import SERVICES

A = "{" + RESPONSE_NS + "}"
OL = "{" + OUTLOOK_NS + "}"


def _config(**overrides: object) -> Config:
    config = parse(default_toml(overrides=overrides))
    data = config.data
    data["domains"]["example.org"] = {"description": "", "mail_server": "",
                                      "dkim_signing": True, "disclaimer": ""}
    data["domains"]["elsewhere.net"] = {"description": "", "mail_server": "mx.elsewhere.net",
                                        "dkim_signing": True, "disclaimer": ""}
    return config


@pytest.fixture
def site() -> Site:
    return autoconfig.site(_config())


def request(email: str, schema: str = OUTLOOK_NS) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{REQUEST_NS}">'
            f"<Request><EMailAddress>{email}</EMailAddress>"
            f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>"
            "</Request></Autodiscover>").encode()


# --- what apply renders ----------------------------------------------------------------

def test_the_site_is_the_host_the_mailbox_domains_and_the_listeners_that_run() -> None:
    s = autoconfig.site(_config())
    assert s.hostname == "mail.example.com"
    assert s.domains == ("example.com", "example.org")  # not the delegated one
    assert [(x.protocol, x.port, x.socket_type) for x in s.listeners] == [
        ("imap", 993, "SSL"), ("imap", 143, "STARTTLS"),
        ("pop3", 995, "SSL"), ("pop3", 110, "STARTTLS"),
        ("smtp", 465, "SSL"), ("smtp", 587, "STARTTLS")]
    off = autoconfig.site(_config(**{"pop3.enabled": False, "smtpd.smtps.enabled": False,
                                     "smtpd.submission.port": 2587}))
    assert [(x.protocol, x.port) for x in off.listeners] == [
        ("imap", 993), ("imap", 143), ("smtp", 2587)]


def test_the_rendered_file_reads_back_as_the_same_site(site: Site) -> None:
    [file] = autoconfig.render(_config())
    assert file.path == "/etc/appliance/autoconfig.json"
    assert documents.site_from_dict(json.loads(file.text)) == site


@pytest.mark.parametrize("broken", [
    [], {"hostname": "mail", "domains": ["example.com"], "listeners": []},
    {"hostname": "mail.example.com", "domains": [], "listeners": []},
    {"hostname": "mail.example.com", "domains": ["example.com"],
     "listeners": [{"protocol": "imap", "port": "993", "socket_type": "SSL"}]},
    {"hostname": "mail.example.com", "domains": ["example.com"],
     "listeners": [{"protocol": "nntp", "port": 119, "socket_type": "SSL"}]},
])
def test_a_broken_site_file_is_refused(broken: object) -> None:
    with pytest.raises(ValueError):
        documents.site_from_dict(broken)


def test_supervisord_runs_the_server_before_nginx_also_without_webmail() -> None:
    for config in (_config(), _config(**{"webmail.enabled": False})):
        programs = {p.name: p for s in SERVICES for p in s.programs(config)}
        assert programs["autoconfig"].command.endswith("appliance autoconfig-server")
        assert programs["autoconfig"].priority < programs["nginx"].priority


def test_nginx_passes_the_three_documents_to_the_socket() -> None:
    conf = webmail.nginx_conf(_config())
    socket_pass = f"proxy_pass http://unix:{autoconfig.paths.AUTOCONFIG_SOCKET}:;"
    assert conf.count(socket_pass) == 3
    assert r"location ~ ^/(?:\.well-known/autoconfig/)?mail/config-v1\.1\.xml$" in conf
    assert "location = /mobileconfig {" in conf
    assert r"location ~* ^/autodiscover/autodiscover\.xml$" in conf
    assert "client_max_body_size 8k;" in conf and documents.MAX_REQUEST == 8 * 1024


# --- Thunderbird ----------------------------------------------------------------------

def test_thunderbird_gets_every_listener_implicit_tls_first(site: Site) -> None:
    root = ET.fromstring(documents.thunderbird(site, "example.org"))
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "example.org"
    assert [d.text for d in provider.findall("domain")] == ["example.org", "example.com"]
    incoming = [(s.get("type"), s.findtext("hostname"), s.findtext("port"),
                 s.findtext("socketType"), s.findtext("username"))
                for s in provider.findall("incomingServer")]
    assert incoming == [
        ("imap", "mail.example.com", "993", "SSL", "%EMAILLOCALPART%"),
        ("imap", "mail.example.com", "143", "STARTTLS", "%EMAILLOCALPART%"),
        ("pop3", "mail.example.com", "995", "SSL", "%EMAILLOCALPART%"),
        ("pop3", "mail.example.com", "110", "STARTTLS", "%EMAILLOCALPART%")]
    outgoing = [(s.get("type"), s.findtext("port"), s.findtext("socketType"),
                 s.findtext("authentication")) for s in provider.findall("outgoingServer")]
    assert outgoing == [("smtp", "465", "SSL", "password-cleartext"),
                        ("smtp", "587", "STARTTLS", "password-cleartext")]


def test_thunderbird_leaves_out_what_is_off() -> None:
    s = autoconfig.site(_config(**{"imap.enabled": False, "smtpd.submission.enabled": False}))
    root = ET.fromstring(documents.thunderbird(s, "example.com"))
    assert [x.get("type") for x in root.iter("incomingServer")] == ["pop3", "pop3"]
    assert [x.findtext("port") for x in root.iter("outgoingServer")] == ["465"]


@pytest.mark.parametrize(("host", "email", "domain"), [
    ("autoconfig.example.org", "", "example.org"),
    ("AUTOCONFIG.example.org:443", "", "example.org"),
    ("mail.example.com", "someone@Example.ORG", "example.org"),
    ("autoconfig.example.org", "someone@other.test", "example.org"),
    ("autoconfig.other.test", "", "example.com"),
    ("", "<script>", "example.com"),
])
def test_thunderbird_is_told_the_domain_it_asked_for(site: Site, host: str, email: str,
                                                     domain: str) -> None:
    assert documents.thunderbird_domain(site, host, email) == domain


# --- addresses ------------------------------------------------------------------------

def test_an_address_of_ours_splits_into_login_and_domain(site: Site) -> None:
    assert documents.split_address(" Jo.Smith@Example.ORG ", site) == ("Jo.Smith",
                                                                        "example.org")
    assert documents.login_of("Jo.Smith") == "jo.smith"
    with pytest.raises(UnknownDomain):
        documents.split_address("jo@elsewhere.net", site)  # delegated: not here


@pytest.mark.parametrize("text", [
    "", "jo", "@example.com", "jo@", '"jo smith"@example.com', "jo..smith@example.com",
    "jo@exa mple.com", "jo\r\nBcc: x@example.com", "jo@ex\u00e4mple.com",
    "j<o>@example.com", "x" * 65 + "@example.com", "jo@" + "a." * 130 + "com",
])
def test_what_is_no_address_is_a_bad_request(site: Site, text: str) -> None:
    with pytest.raises(BadRequest):
        documents.split_address(text, site)


# --- the autodiscover request ---------------------------------------------------------

def test_the_request_gives_its_address_and_schema() -> None:
    parsed = documents.parse_autodiscover(request("jo@example.com"))
    assert parsed == documents.AutodiscoverRequest("jo@example.com", OUTLOOK_NS)
    bare = b"<Autodiscover><Request><EMailAddress>a@b.c</EMailAddress></Request></Autodiscover>"
    assert documents.parse_autodiscover(bare) == documents.AutodiscoverRequest("a@b.c", "")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Autodiscover><Request><EMailAddress>&lol3;@example.com</EMailAddress></Request></Autodiscover>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Autodiscover><Request><EMailAddress>&xxe;</EMailAddress></Request></Autodiscover>"""
PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY % p SYSTEM "http://198.51.100.1/x.dtd"> %p;]>
<Autodiscover><Request><EMailAddress>a@example.com</EMailAddress></Request></Autodiscover>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Autodiscover SYSTEM "http://198.51.100.1/x.dtd">
<Autodiscover><Request><EMailAddress>a@example.com</EMailAddress></Request></Autodiscover>"""


@pytest.mark.parametrize(("body", "why"), [
    (b"", "not well-formed"),
    (b"jo@example.com", "not well-formed"),
    (b"<Autodiscover><Request><EMailAddress>a@b.c</Request></Autodiscover>",
     "not well-formed"),
    (b"<Autodiscover><Request><EMailAddress>&undefined;</EMailAddress></Request>"
     b"</Autodiscover>", "not well-formed"),
    (BILLION_LAUGHS, "document type"),
    (EXTERNAL, "document type"),
    (PARAMETER, "document type"),
    (EXTERNAL_DTD, "document type"),
    (b"<Other><Request><EMailAddress>a@b.c</EMailAddress></Request></Other>", "Other"),
    (b"<Autodiscover><Request></Request></Autodiscover>", "not one EMailAddress"),
    (b"<Autodiscover><Request><EMailAddress>a@b.c</EMailAddress>"
     b"<EMailAddress>d@b.c</EMailAddress></Request></Autodiscover>", "not one EMailAddress"),
    (b'<a:Autodiscover xmlns:a="urn:other"><a:Request/></a:Autodiscover>', "another schema"),
    (request("x" * 9000 + "@example.com"), "over 8192 bytes"),
])
def test_a_bad_or_hostile_request_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(BadRequest, match=why):
        documents.parse_autodiscover(body)


# --- Outlook --------------------------------------------------------------------------

def _protocols(document: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(document)
    assert root.tag == A + "Autodiscover"
    account = root.find(f"{OL}Response/{OL}Account")
    assert account is not None
    assert account.findtext(OL + "Action") == "settings"
    return {p.findtext(OL + "Type", ""): {c.tag.removeprefix(OL): c.text or "" for c in p}
            for p in account.findall(OL + "Protocol")}


def test_outlook_gets_imap_pop3_and_smtp_over_tls_for_the_address(site: Site) -> None:
    status, document = documents.answer_autodiscover(site, request("Jo@Example.com"), "t")
    assert status == 200
    root = ET.fromstring(document)
    assert root.findtext(f"{OL}Response/{OL}User/{OL}AutoDiscoverSMTPAddress") == "Jo@Example.com"
    protocols = _protocols(document)
    assert list(protocols) == ["IMAP", "POP3", "SMTP"]
    imap, smtp = protocols["IMAP"], protocols["SMTP"]
    assert (imap["Server"], imap["Port"], imap["SSL"], imap["LoginName"]) == (
        "mail.example.com", "993", "on", "jo")
    assert (smtp["Port"], smtp["SSL"], smtp["AuthRequired"]) == ("465", "on", "on")
    assert "Encryption" not in smtp


def test_outlook_is_told_starttls_on_587_when_465_is_off() -> None:
    s = autoconfig.site(_config(**{"smtpd.smtps.enabled": False, "pop3.enabled": False}))
    protocols = _protocols(documents.answer_autodiscover(s, request("jo@example.com"), "t")[1])
    assert list(protocols) == ["IMAP", "SMTP"]
    assert (protocols["SMTP"]["Port"], protocols["SMTP"]["Encryption"]) == ("587", "TLS")


def _error(document: bytes) -> tuple[str, str]:
    root = ET.fromstring(document)
    error = root.find(f"{A}Response/{A}Error")
    assert error is not None and error.get("Time") == "12:00:00.000000"
    return error.findtext(A + "ErrorCode", ""), error.findtext(A + "Message", "")


def test_any_address_of_our_domains_gets_the_same_answer(site: Site) -> None:
    """No user enumeration: a user, a pseudonym and nobody look alike."""
    names = ("postmaster", "qqnobody", "jqzuser")
    answers = {documents.answer_autodiscover(site, request(f"{name}@example.com"), "t")
               [1].replace(name.encode(), b"NAME") for name in names}
    assert len(answers) == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    (request("jo@other.test"), 200, "500"),
    (request("jo@example.com", "http://schemas.microsoft.com/exchange/autodiscover/"
                               "mobilesync/responseschema/2006"), 200, "601"),
    (request("not an address"), 400, "600"),
    (BILLION_LAUGHS, 400, "600"),
    (b"\xff\xfe<", 400, "600"),
])
def test_outlook_gets_the_protocols_errors(site: Site, body: bytes, status: int,
                                           code: str) -> None:
    got_status, document = documents.answer_autodiscover(site, body, "12:00:00.000000")
    assert got_status == status
    assert _error(document)[0] == code


# --- Apple ----------------------------------------------------------------------------

def test_the_apple_profile_configures_imap_and_smtp_without_a_password(site: Site) -> None:
    profile = plistlib.loads(documents.mobileconfig(site, "Jo@example.org", "Jo"))
    assert profile["PayloadType"] == "Configuration"
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == "Jo@example.org"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
            mail["IncomingMailServerUseSSL"], mail["IncomingMailServerUsername"]) == (
        "mail.example.com", 993, True, "jo")
    assert (mail["OutgoingMailServerPortNumber"], mail["OutgoingMailServerUseSSL"],
            mail["OutgoingMailServerUsername"]) == (465, True, "jo")
    assert not any("Password" in key and key != "OutgoingPasswordSameAsIncomingPassword"
                   for key in mail)


def test_the_profile_uuids_are_stable_per_address(site: Site) -> None:
    def uuids(email: str) -> tuple[str, str]:
        profile = plistlib.loads(documents.mobileconfig(site, email, "jo"))
        return profile["PayloadUUID"], profile["PayloadContent"][0]["PayloadUUID"]

    first = uuids("jo@example.com")
    assert first == uuids("JO@example.com") and len(set(first)) == 2
    assert set(first).isdisjoint(uuids("al@example.com"))


def test_the_profile_falls_back_to_pop3_and_587_and_needs_both_sides() -> None:
    s = autoconfig.site(_config(**{"imap.enabled": False, "smtpd.smtps.enabled": False}))
    [mail] = plistlib.loads(documents.mobileconfig(s, "jo@example.com", "jo"))["PayloadContent"]
    assert (mail["EmailAccountType"], mail["IncomingMailServerPortNumber"],
            mail["OutgoingMailServerPortNumber"]) == ("EmailTypePOP", 995, 587)
    none = autoconfig.site(_config(**{"imap.enabled": False, "pop3.enabled": False}))
    with pytest.raises(BadRequest):
        documents.mobileconfig(none, "jo@example.com", "jo")


# --- the server over its socket -------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(self.path))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    # a short path: a Unix socket's name has a limit near 100 bytes
    sock_path = Path(f"/tmp/autoconfig-test-{id(tmp_path)}.sock")
    config = tmp_path / "autoconfig.json"
    config.write_text(autoconfig.render(_config())[0].text)
    instance = server.AutoconfigServer(server.SiteFile(config))
    instance.start(bind_socket(sock_path))
    try:
        yield sock_path, config
    finally:
        instance.stop()
        sock_path.unlink(missing_ok=True)


def _ask(sock: Path, method: str, target: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    conn = _UnixConnection(sock)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_the_server_answers_each_document(running: tuple[Path, Path]) -> None:
    sock, _ = running
    status, kind, body = _ask(sock, "GET", "/mail/config-v1.1.xml?emailaddress=a%40b.c",
                              headers={"Host": "autoconfig.example.org"})
    assert (status, kind) == (200, "application/xml; charset=utf-8")
    assert ET.fromstring(body).find("emailProvider").get("id") == "example.org"  # type: ignore[union-attr]
    status, _, body = _ask(sock, "POST", "/Autodiscover/Autodiscover.xml",
                           request("jo@example.com"))
    assert status == 200 and _protocols(body)["IMAP"]["Port"] == "993"
    status, kind, body = _ask(sock, "GET", "/mobileconfig?email=jo%40example.com")
    assert (status, kind) == (200, "application/x-apple-aspen-config")
    assert plistlib.loads(body)["PayloadContent"][0]["EmailAddress"] == "jo@example.com"


@pytest.mark.parametrize(("method", "target", "body", "status"), [
    ("GET", "/autodiscover/autodiscover.xml", None, 405),
    ("POST", "/mail/config-v1.1.xml", b"", 405),
    ("POST", "/autodiscover/autodiscover.xml", b"<x>", 400),
    ("POST", "/autodiscover/autodiscover.xml", b"<" * 9000, 413),
    ("GET", "/mobileconfig", None, 400),
    ("GET", "/mobileconfig?email=%3Cscript%3E%40example.com", None, 400),
    ("GET", "/mobileconfig?email=jo%40other.test", None, 404),
    ("GET", "/etc/passwd", None, 404),
])
def test_the_server_refuses_what_it_does_not_serve(running: tuple[Path, Path], method: str,
                                                   target: str, body: bytes | None,
                                                   status: int) -> None:
    assert _ask(running[0], method, target, body)[0] == status


def test_the_server_reads_a_changed_site_file_and_says_503_without_one(
        running: tuple[Path, Path]) -> None:
    sock, config = running
    assert b"<port>995</port>" in _ask(sock, "GET", "/mail/config-v1.1.xml")[2]
    config.write_text(autoconfig.render(_config(**{"pop3.enabled": False}))[0].text)
    assert b"<port>995</port>" not in _ask(sock, "GET", "/mail/config-v1.1.xml")[2]
    config.unlink()
    assert _ask(sock, "GET", "/mail/config-v1.1.xml")[0] == 503
