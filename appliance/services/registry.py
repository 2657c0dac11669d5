"""Every service the container runs, in order: the one list that boot, apply and status
loop over. Adding a service: its module under appliance/services/, one line here, its
section in appliance/config/schema.py.

The order is the reload order: the network and supervisord first (an `update` may start
or stop programs the later reloads then find running or not), the resolver before what
looks names up, our SMTP daemons last (they hand off to Postfix and ask spamd and clamd).
"""

from __future__ import annotations

from appliance.config import Config
from appliance.services.autoconfig import Autoconfig
from appliance.services.base import RenderedFile, Service
from appliance.services.clamav import ClamAV
from appliance.services.dovecot import Dovecot
from appliance.services.fetchmail import Fetchmail
from appliance.services.mta_sts_resolver import MtaStsResolver
from appliance.services.network import Network
from appliance.services.postfix import Postfix
from appliance.services.security import Security
from appliance.services.smtpd import Smtpd
from appliance.services.spamassassin import SpamAssassin
from appliance.services.supervisord import Supervisord
from appliance.services.unbound import Unbound
from appliance.services.webmail import Webmail

SERVICES: tuple[Service, ...] = (
    Network(),
    Supervisord(),
    Unbound(),
    MtaStsResolver(),  # the policies Postfix asks for, before Postfix
    Postfix(),
    Security(),  # the ban rules before Dovecot, which asks its policy server
    Dovecot(),
    Autoconfig(),  # its server before nginx, which passes it the requests
    Webmail(),
    SpamAssassin(),
    ClamAV(),
    Fetchmail(),
    Smtpd(),
)


def render_all(config: Config) -> dict[str, list[RenderedFile]]:
    """{service name: its files}, in the registry's order."""
    return {service.name: service.render(config) for service in SERVICES}


def by_name(name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(name)
