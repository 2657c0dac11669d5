"""Client autoconfig in the running appliance (issue 22): Thunderbird's autoconfig,
Outlook's autodiscover and the Apple profile fetched over HTTPS from port 443 as the
clients fetch them, parsed, and the servers and logins they name tried for real."""

from __future__ import annotations

import http.client
import imaplib
import plistlib
import smtplib
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests.e2e.conftest import ALICE_PASSWORD, DOMAIN, Appliance
from tests.e2e.mail import TIMEOUT_S, imap_login, tls_context

pytestmark = pytest.mark.e2e

HOST = f"mail.{DOMAIN}"
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
OL = "{" + OUTLOOK + "}"


def test_the_server_runs_unprivileged_behind_a_socket_only_nginx_reaches(host: Any) -> None:
    [server] = [p for p in host.process.filter(user="nobody")
                if p.args.endswith("appliance autoconfig-server")]
    sock = host.file("/run/appliance/autoconfig.sock")
    assert sock.is_socket and (sock.user, sock.group, sock.mode) == ("nobody", "www-data",
                                                                     0o660)
    assert server.user == "nobody"


def https(appliance: Appliance, method: str, target: str, *, host: str = HOST,
          body: bytes | None = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPSConnection(appliance.ip, 443, context=tls_context(),
                                       timeout=TIMEOUT_S)
    try:
        headers = {"Host": host}
        if body is not None:
            headers["Content-Type"] = "text/xml"
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def autodiscover_request(email: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{REQUEST_NS}">'
            f"<Request><EMailAddress>{email}</EMailAddress>"
            f"<AcceptableResponseSchema>{OUTLOOK}</AcceptableResponseSchema>"
            "</Request></Autodiscover>").encode()


def smtp_login(appliance: Appliance, port: int, socket_type: str, user: str) -> None:
    if socket_type == "SSL":
        client: smtplib.SMTP = smtplib.SMTP_SSL(appliance.ip, port, context=tls_context(),
                                                timeout=TIMEOUT_S)
    else:
        client = smtplib.SMTP(appliance.ip, port, timeout=TIMEOUT_S)
        client.starttls(context=tls_context())
    try:
        client.login(user, ALICE_PASSWORD)
    finally:
        client.quit()


def test_thunderbird_autoconfig_names_the_servers_and_its_logins_work(
        appliance: Appliance) -> None:
    status, kind, body = https(appliance, "GET", "/mail/config-v1.1.xml"
                               f"?emailaddress=alice%40{DOMAIN}", host=f"autoconfig.{DOMAIN}")
    assert (status, kind) == (200, "application/xml; charset=utf-8"), body
    provider = ET.fromstring(body).find("emailProvider")
    assert provider is not None and provider.get("id") == DOMAIN
    assert DOMAIN in [d.text for d in provider.findall("domain")]
    incoming = [(s.get("type"), s.findtext("hostname"), s.findtext("port"),
                 s.findtext("socketType")) for s in provider.findall("incomingServer")]
    assert incoming == [("imap", HOST, "993", "SSL"), ("imap", HOST, "143", "STARTTLS"),
                        ("pop3", HOST, "995", "SSL"), ("pop3", HOST, "110", "STARTTLS")]
    outgoing = [(s.findtext("port"), s.findtext("socketType"))
                for s in provider.findall("outgoingServer")]
    assert outgoing == [("465", "SSL"), ("587", "STARTTLS")]
    user = provider.findtext("incomingServer/username", "").replace("%EMAILLOCALPART%",
                                                                   "alice")
    assert imap_login(appliance.ip, user, ALICE_PASSWORD, port=993)
    box = imaplib.IMAP4(appliance.ip, 143, timeout=TIMEOUT_S)
    box.starttls(ssl_context=tls_context())
    assert box.login(user, ALICE_PASSWORD)[0] == "OK"
    box.logout()
    for port, socket_type in outgoing:
        smtp_login(appliance, int(port or 0), socket_type or "", user)
    # the same document on our own name, at the well-known path
    status, _, again = https(appliance, "GET", "/.well-known/autoconfig/mail/config-v1.1.xml")
    assert status == 200 and again == body


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml",
                                  "/Autodiscover/Autodiscover.xml"])
def test_outlook_autodiscover_answers_the_address_with_imap_and_smtp(
        appliance: Appliance, path: str) -> None:
    status, kind, body = https(appliance, "POST", path, host=f"autodiscover.{DOMAIN}",
                               body=autodiscover_request(f"alice@{DOMAIN}"))
    assert (status, kind) == (200, "application/xml; charset=utf-8"), body
    response = ET.fromstring(body).find(f"{OL}Response")
    assert response is not None
    assert response.findtext(f"{OL}User/{OL}AutoDiscoverSMTPAddress") == f"alice@{DOMAIN}"
    protocols = {p.findtext(f"{OL}Type"): p for p in response.iter(f"{OL}Protocol")}
    imap, smtp = protocols["IMAP"], protocols["SMTP"]
    assert (imap.findtext(f"{OL}Server"), imap.findtext(f"{OL}Port"),
            imap.findtext(f"{OL}SSL")) == (HOST, "993", "on")
    assert (smtp.findtext(f"{OL}Port"), smtp.findtext(f"{OL}SSL")) == ("465", "on")
    login = imap.findtext(f"{OL}LoginName", "")
    assert imap_login(appliance.ip, login, ALICE_PASSWORD, port=993)
    smtp_login(appliance, 465, "SSL", smtp.findtext(f"{OL}LoginName", ""))


def test_autodiscover_answers_a_user_and_nobody_alike(appliance: Appliance) -> None:
    """No user enumeration."""
    answers = {https(appliance, "POST", "/autodiscover/autodiscover.xml",
                     body=autodiscover_request(f"{name}@{DOMAIN}"))[2]
               .replace(name.encode(), b"NAME") for name in ("alice", "zz-nobody-here")}
    assert len(answers) == 1


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;&l;&l;&l;&l;&l;&l;">]>
<Autodiscover><Request><EMailAddress>&l2;@example.com</EMailAddress></Request></Autodiscover>"""


@pytest.mark.parametrize(("method", "body", "status"), [
    ("POST", b"not xml at all", 400),
    ("POST", BILLION_LAUGHS, 400),
    ("POST", autodiscover_request("x" * 20000 + f"@{DOMAIN}"), 413),  # nginx's limit
    ("GET", None, 405),
])
def test_a_bad_autodiscover_request_gets_a_clean_4xx(appliance: Appliance, method: str,
                                                    body: bytes | None, status: int) -> None:
    got, _, answer = https(appliance, method, "/autodiscover/autodiscover.xml", body=body)
    assert got == status, answer
    if status == 400:  # the protocol's own error, as XML
        error = ET.fromstring(answer).find(f"{RESPONSE_NS}Response/{RESPONSE_NS}Error")
        assert error is not None and error.findtext(f"{RESPONSE_NS}ErrorCode") == "600"


def test_the_apple_profile_configures_imap_and_smtp_for_the_address(
        appliance: Appliance) -> None:
    status, kind, body = https(appliance, "GET", f"/mobileconfig?email=alice%40{DOMAIN}")
    assert (status, kind) == (200, "application/x-apple-aspen-config"), body
    profile = plistlib.loads(body)
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
            mail["IncomingMailServerUseSSL"]) == (HOST, 993, True)
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"],
            mail["OutgoingMailServerUseSSL"]) == (HOST, 465, True)
    assert imap_login(appliance.ip, mail["IncomingMailServerUsername"], ALICE_PASSWORD)
    again = plistlib.loads(https(appliance, "GET", f"/mobileconfig?email=alice%40{DOMAIN}")[2])
    assert again["PayloadUUID"] == profile["PayloadUUID"]
    assert https(appliance, "GET", "/mobileconfig?email=%3Cb%3E%40" + DOMAIN)[0] == 400
    assert https(appliance, "GET", "/mobileconfig?email=alice%40other.test")[0] == 404
