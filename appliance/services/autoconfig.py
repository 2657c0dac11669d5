"""Client autoconfig's home (appliance.autoconfig): what Thunderbird's autoconfig,
Outlook's autodiscover and the Apple profile say, rendered at apply into
/etc/appliance/autoconfig.json (the server never reads appliance.toml), and its server
under supervisord (`appliance autoconfig-server`), which nginx's port 443 passes the
requests to (appliance.services.webmail: autoconfig_locations).

The host name is system.hostname.system.domain; the domains are the mailbox domains
(a delegated domain's mailboxes are on its own server); the listeners are those that
run: IMAP 993/143 with imap.enabled, POP3 995/110 with pop3.enabled (Dovecot's fixed
ports), SMTP on smtpd.smtps and smtpd.submission's ports while each is enabled.
The server reads the file again when it changes: an apply needs no reload here.
"""

from __future__ import annotations

import json

from appliance import paths
from appliance.autoconfig.documents import Listener, Site, site_to_dict
from appliance.config import Config
from appliance.services import dovecot
from appliance.services.base import Program, RenderedFile, Service, installed_command

PROGRAM = "autoconfig"
# Dovecot's listeners: implicit TLS, then STARTTLS
DOVECOT_PORTS = {"imap": ((dovecot.IMAPS_PORT, "SSL"), (dovecot.IMAP_PORT, "STARTTLS")),
                 "pop3": ((dovecot.POP3S_PORT, "SSL"), (dovecot.POP3_PORT, "STARTTLS"))}
SMTP_SOCKET_TYPES = {"smtps": "SSL", "submission": "STARTTLS"}


def site(config: Config) -> Site:
    d = config.data
    listeners = [Listener(protocol, port, socket_type)
                 for protocol, ports in DOVECOT_PORTS.items() if d[protocol]["enabled"]
                 for port, socket_type in ports]
    listeners += [Listener("smtp", d["smtpd"][daemon]["port"], socket_type)
                  for daemon, socket_type in SMTP_SOCKET_TYPES.items()
                  if d["smtpd"][daemon]["enabled"]]
    return Site(config.fqdn, tuple(config.mailbox_domains or [d["system"]["domain"]]),
                tuple(listeners))


def render(config: Config) -> list[RenderedFile]:
    text = json.dumps(site_to_dict(site(config)), indent=2, sort_keys=True) + "\n"
    return [RenderedFile(paths.AUTOCONFIG_JSON, text, mode=0o644)]


class Autoconfig(Service):
    name = "autoconfig"

    render = staticmethod(render)

    def programs(self, config: Config) -> list[Program]:
        # before nginx (priority 25), which passes it the requests
        return [Program(PROGRAM, f"{installed_command('appliance')} autoconfig-server",
                        priority=22, stopwait=5)]
