"""The client autoconfiguration documents, as pure functions of a Site (what apply
renders into autoconfig.json: the host name, the mail domains, the listeners that run)
and of the request.

- Thunderbird's autoconfig (clientConfig version 1.1), the same for every address:
  every listener, implicit TLS first, the login `%EMAILLOCALPART%`.
- Outlook's autodiscover (POX, the outlook response schema 2006a), for the address in
  the request: the best IMAP, POP3 and SMTP listener, the login its local part.
- An Apple configuration profile (.mobileconfig, an XML property list) with one
  com.apple.mail.managed payload: the best incoming and outgoing listener, the login,
  no password; its PayloadUUIDs derived from the host and the address, so downloading it
  again replaces the profile instead of adding one.

The login is the address's local part: Dovecot takes `name` or `name@any-domain`
(auth_username_format drops the domain), our SMTP daemons `name` or `name@local-domain`
(smtpd.auth), and the local part is the one form both take for every address of every
domain (a user receives at each of them). An address of our domains is answered
whether its user exists or not, the same way: nothing here tells who has a mailbox.
An address of another domain is refused (which domains are ours is public in the DNS).

Everything taken from a request is checked (an address is a dot-atom local part and
one of our domains) and written through ElementTree or plistlib, which escape it.
The autodiscover request is parsed by expat with no document type allowed: no DTD, so
no entity but XML's five and character references (an undefined one is a parse error),
nothing fetched, no expansion to blow up; it is refused over MAX_REQUEST bytes.
"""

from __future__ import annotations

import hashlib
import plistlib
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

PROTOCOLS = ("imap", "pop3", "smtp")
SOCKET_TYPES = ("SSL", "STARTTLS")  # implicit TLS, or plain then STARTTLS
MAX_REQUEST = 8192  # bytes of an autodiscover request: Outlook's are under 500
MAX_ADDRESS = 254

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

THUNDERBIRD_PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"  # matched without case
MOBILECONFIG_PATH = "/mobileconfig"  # ?email=ADDRESS
MOBILECONFIG_TYPE = "application/x-apple-aspen-config"

# RFC 5322's dot-atom: what a local part of ours can be (user, group and pseudonym
# names are narrower still); a quoted local part is never one of ours
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                   r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


class BadRequest(ValueError):
    """A request that cannot be answered with settings; the text says why."""


class UnknownDomain(ValueError):
    """An address of a domain that is not ours."""


@dataclass(frozen=True)
class Listener:
    protocol: str  # PROTOCOLS
    port: int
    socket_type: str  # SOCKET_TYPES


@dataclass(frozen=True)
class Site:
    """What the documents say: the server's name, the mail domains (the primary one
    first) and the listeners that run, in order of preference within a protocol."""

    hostname: str
    domains: tuple[str, ...]
    listeners: tuple[Listener, ...]

    def of(self, protocol: str) -> list[Listener]:
        return [x for x in self.listeners if x.protocol == protocol]

    def best(self, protocol: str) -> Listener | None:
        """Implicit TLS before STARTTLS, else the first given."""
        found = self.of(protocol)
        return min(found, key=lambda x: SOCKET_TYPES.index(x.socket_type), default=None)

    def incoming(self) -> Listener | None:
        return self.best("imap") or self.best("pop3")


def site_to_dict(site: Site) -> dict[str, Any]:
    return {"hostname": site.hostname, "domains": list(site.domains),
            "listeners": [{"protocol": x.protocol, "port": x.port,
                           "socket_type": x.socket_type} for x in site.listeners]}


def site_from_dict(data: Any) -> Site:
    """The Site autoconfig.json holds; ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    hostname, domains, listeners = data.get("hostname"), data.get("domains"), \
        data.get("listeners")
    if not isinstance(hostname, str) or not _HOST.fullmatch(hostname):
        raise ValueError(f"hostname {hostname!r} is not a host name")
    if (not isinstance(domains, list) or not domains
            or not all(isinstance(d, str) and _HOST.fullmatch(d) for d in domains)):
        raise ValueError("domains is not a list of domain names")
    if not isinstance(listeners, list):
        raise ValueError("listeners is not a list")
    out = []
    for entry in listeners:
        if not isinstance(entry, dict):
            raise ValueError("a listener is not an object")
        protocol, port, socket_type = (entry.get("protocol"), entry.get("port"),
                                       entry.get("socket_type"))
        if (protocol not in PROTOCOLS or socket_type not in SOCKET_TYPES
                or type(port) is not int or not 0 < port < 65536):
            raise ValueError(f"listener {entry!r} is not protocol, port, socket_type")
        out.append(Listener(protocol, port, socket_type))
    return Site(hostname, tuple(domains), tuple(out))


def split_address(text: str, site: Site) -> tuple[str, str]:
    """(local part, domain) of an address of one of our domains (the domain in lower
    case); BadRequest if TEXT is no address, UnknownDomain if its domain is not ours."""
    text = text.strip()
    local, at, domain = text.rpartition("@")
    if (not at or len(text) > MAX_ADDRESS or len(local) > 64
            or not _LOCAL.fullmatch(local) or not domain.isascii()):
        raise BadRequest("not an e-mail address")
    domain = domain.lower().rstrip(".")
    if not _HOST.fullmatch(domain):
        raise BadRequest("not an e-mail address")
    if domain not in site.domains:
        raise UnknownDomain(f"{domain} is not a mail domain of this server")
    return local, domain


def login_of(local: str) -> str:
    """The login both Dovecot and the SMTP daemons take for every address (above)."""
    return local.lower()


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _sub(parent: ET.Element, tag: str, text: str | int | None = None,
         **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


# --- Thunderbird ----------------------------------------------------------------------

def thunderbird_domain(site: Site, host: str, email: str) -> str:
    """Which of our domains the document is for: the address's (Thunderbird sends
    ?emailaddress=), else the one in the Host name (autoconfig.DOMAIN, DOMAIN), else
    the primary one."""
    domain = email.rpartition("@")[2].strip().lower()
    if domain in site.domains:
        return domain
    host = host.rpartition(":")[0] if host.count(":") == 1 else host
    host = host.lower().rstrip(".").removeprefix("autoconfig.")
    return host if host in site.domains else site.domains[0]


def thunderbird(site: Site, domain: str) -> bytes:
    """clientConfig 1.1 (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:
    ConfigFileFormat) for DOMAIN, listing every domain of ours."""
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domain)
    for name in (domain, *(d for d in site.domains if d != domain)):
        _sub(provider, "domain", name)
    _sub(provider, "displayName", f"{domain} mail ({site.hostname})")
    _sub(provider, "displayShortName", domain)
    # Thunderbird takes the first incoming server it can reach: IMAP before POP3
    ordered = sorted(site.listeners, key=lambda x: SOCKET_TYPES.index(x.socket_type))
    for protocol in ("imap", "pop3", "smtp"):
        tag = "outgoingServer" if protocol == "smtp" else "incomingServer"
        for listener in (x for x in ordered if x.protocol == protocol):
            server = _sub(provider, tag, type=protocol)
            _sub(server, "hostname", site.hostname)
            _sub(server, "port", listener.port)
            _sub(server, "socketType", listener.socket_type)
            _sub(server, "authentication", "password-cleartext")
            _sub(server, "username", "%EMAILLOCALPART%")
    return _xml(root)


# --- Outlook --------------------------------------------------------------------------

@dataclass(frozen=True)
class AutodiscoverRequest:
    email: str
    schema: str  # AcceptableResponseSchema; "" when the request names none


def parse_autodiscover(body: bytes) -> AutodiscoverRequest:
    """The address (and wanted schema) of an autodiscover request:

        <Autodiscover xmlns="...outlook/requestschema/2006"><Request>
          <EMailAddress>user@example.com</EMailAddress>
          <AcceptableResponseSchema>...responseschema/2006a</AcceptableResponseSchema>
        </Request></Autodiscover>

    BadRequest if BODY is over MAX_REQUEST bytes, not well-formed, has a document type
    (any DTD: so no entity of its own, nothing external), or is not that shape."""
    if len(body) > MAX_REQUEST:
        raise BadRequest(f"request over {MAX_REQUEST} bytes")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[str] = []
    fields: dict[str, list[str]] = {}
    wanted = ("EMailAddress", "AcceptableResponseSchema")

    def refuse(*args: Any) -> None:
        raise BadRequest("a document type or entity declaration is not allowed")

    def start(name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if namespace not in (REQUEST_NS, ""):
            raise BadRequest(f"element {local} of another schema")
        expected = {0: "Autodiscover", 1: "Request"}.get(len(stack))
        if expected is not None and local != expected:
            raise BadRequest(f"{local} where {expected} belongs")
        stack.append(local)
        if len(stack) == 3 and local in wanted:
            fields.setdefault(local, []).append("")

    def end(name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if len(stack) == 3 and stack[2] in wanted:
            fields[stack[2]][-1] += data

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except expat.ExpatError as e:
        raise BadRequest(f"not well-formed XML: {expat.errors.messages[e.code]}") from None
    emails, schemas = fields.get("EMailAddress", []), fields.get("AcceptableResponseSchema", [])
    if len(emails) != 1 or len(schemas) > 1:
        raise BadRequest("not one EMailAddress in Request")
    return AutodiscoverRequest(emails[0].strip(), schemas[0].strip() if schemas else "")


def autodiscover_error(code: int, message: str, time: str, server_id: str) -> bytes:
    """The protocol's error: 600 Invalid Request, 601 Provider is not available, 500
    the address is not one of ours."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = _sub(root, "Response")
    error = _sub(response, "Error", Time=time, Id=server_id)
    _sub(error, "ErrorCode", code)
    _sub(error, "Message", message)
    _sub(error, "DebugData")
    return _xml(root)


def autodiscover(site: Site, email: str, local: str) -> bytes:
    """Outlook's settings for EMAIL (its local part LOCAL): IMAP, POP3 and SMTP, the
    best listener of each that runs."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = _sub(root, "Response", xmlns=OUTLOOK_NS)
    user = _sub(response, "User")
    _sub(user, "AutoDiscoverSMTPAddress", email)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for protocol in PROTOCOLS:
        listener = site.best(protocol)
        if listener is None:
            continue
        element = _sub(account, "Protocol")
        _sub(element, "Type", protocol.upper())
        _sub(element, "Server", site.hostname)
        _sub(element, "Port", listener.port)
        _sub(element, "DomainRequired", "off")
        _sub(element, "LoginName", login_of(local))
        _sub(element, "SPA", "off")
        _sub(element, "SSL", "on")
        if listener.socket_type == "STARTTLS":
            _sub(element, "Encryption", "TLS")
        _sub(element, "AuthRequired", "on")
        if protocol == "smtp":
            _sub(element, "UsePOPAuth", "on")  # the same login and password
            _sub(element, "SMTPLast", "off")
    return _xml(root)


def answer_autodiscover(site: Site, body: bytes, time: str) -> tuple[int, bytes]:
    """(HTTP status, document) for an autodiscover request BODY: 400 and error 600 for
    a malformed one; 200 and error 601 for another schema (ActiveSync's mobilesync),
    error 500 for an address of another domain; 200 and the settings otherwise."""
    server_id = hashlib.sha256(site.hostname.encode()).hexdigest()[:8]
    try:
        request = parse_autodiscover(body)
        if request.schema not in ("", OUTLOOK_NS):
            return 200, autodiscover_error(601, "Provider is not available", time,
                                           server_id)
        local, _ = split_address(request.email, site)
    except BadRequest:
        return 400, autodiscover_error(600, "Invalid Request", time, server_id)
    except UnknownDomain:
        return 200, autodiscover_error(500, "The e-mail address cannot be found.", time,
                                       server_id)
    if site.incoming() is None:
        return 200, autodiscover_error(601, "Provider is not available", time, server_id)
    return 200, autodiscover(site, request.email, local)


# --- Apple ----------------------------------------------------------------------------

def profile_uuids(site: Site, email: str) -> tuple[str, str]:
    """(the profile's, the mail payload's) UUIDs: the same for the same host and
    address (in any case), different for another."""
    space = uuid.uuid5(uuid.NAMESPACE_DNS, site.hostname)
    key = email.lower()
    return (str(uuid.uuid5(space, f"mobileconfig:{key}")).upper(),
            str(uuid.uuid5(space, f"mobileconfig-mail:{key}")).upper())


def mobileconfig(site: Site, email: str, local: str) -> bytes:
    """A configuration profile with one com.apple.mail.managed payload for EMAIL: IMAP
    (POP3 when IMAP is off) and SMTP, the login LOCAL's, no password (the device
    asks). BadRequest if no incoming or no outgoing listener runs."""
    incoming, outgoing = site.incoming(), site.best("smtp")
    if incoming is None or outgoing is None:
        raise BadRequest("no IMAP, POP3 or submission service runs")
    profile_uuid, mail_uuid = profile_uuids(site, email)
    identifier = ".".join(reversed(site.hostname.split("."))) + ".mobileconfig"
    login = login_of(local)
    mail: dict[str, Any] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.{mail_uuid}",
        "PayloadUUID": mail_uuid,
        "PayloadDisplayName": f"Mail {email}",
        "EmailAccountDescription": email,
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "imap" else "EmailTypePOP",
        "EmailAddress": email,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": site.hostname,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": login,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": site.hostname,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": login,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False,
        "PreventAppSheet": False,
        "SMIMEEnabled": False,
        "allowMailDrop": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.{profile_uuid}",
        "PayloadUUID": profile_uuid,
        "PayloadDisplayName": f"Mail {email}",
        "PayloadDescription": f"The mail account {email} at {site.hostname}",
        "PayloadOrganization": site.hostname,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [mail],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)
