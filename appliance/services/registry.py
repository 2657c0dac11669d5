"""Rendering: a pure function from a validated Config to every service's files.

Each renderer module has a SERVICE name and `render(config) -> list[RenderedFile]`.
`appliance.apply` writes the result atomically and reloads the services that changed.
"""

from __future__ import annotations

from appliance.config import Config
from appliance.services import (
    clamav,
    dovecot,
    fetchmail,
    network,
    postfix,
    smtpd,
    spamassassin,
    supervisord,
    unbound,
    webmail,
)
from appliance.services.base import RenderedFile

RENDERERS = (unbound, network, postfix, dovecot, smtpd, supervisord, fetchmail, spamassassin,
             clamav, webmail)


def render_all(config: Config) -> dict[str, list[RenderedFile]]:
    """{service name: its files}, in a stable order."""
    return {r.SERVICE: r.render(config) for r in RENDERERS}


__all__ = ["RENDERERS", "RenderedFile", "render_all"]
