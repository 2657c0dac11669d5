"""Limits derived from settings, each computed in this one place.

Pure functions of plain values (no I/O, no config object), so the renderers (Postfix,
the network, webmail, the SMTP daemons' settings file) and the daemons themselves agree:
a message the SMTP daemons accept at exactly smtpd.max_message_size still fits Postfix,
the queue's free-space floor follows the same size, and webmail never builds a message
the SMTP side would refuse.
"""

from __future__ import annotations

# Headers Postfix and our daemons add after a client's DATA must not push a message that
# was accepted at exactly the limit over Postfix's own limit.
HEADER_ALLOWANCE = 64 * 1024
# Postfix's documented rule (and its smtpd_space_multf): queue_minfree at least 1.5 x
# message_size_limit, room for the message being received and half another.
SPACE_FACTOR = 1.5
# IPv4 (20) and TCP (20) headers without options: what an MTU leaves for a segment.
TCP_IP_HEADERS = 40
MB = 1024 * 1024
# Base64 turns 3 bytes into 4: a file of N bytes becomes a message of about 4N/3.
ATTACHMENT_SHARE = (3, 4)
FORM_ALLOWANCE_MB = 2  # PHP's post_max_size: the form around the uploaded file
NGINX_ALLOWANCE_MB = 1  # nginx's client_max_body_size: the request around that form


def postfix_message_size_limit(max_message_size: int) -> int:
    """Postfix's message_size_limit for smtpd.max_message_size."""
    return max_message_size + HEADER_ALLOWANCE


def min_free(message_size_limit: int) -> int:
    """queue_minfree for a Postfix message size limit."""
    return int(SPACE_FACTOR * message_size_limit)


def queue_minfree(max_message_size: int) -> int:
    """Postfix's queue_minfree, and the free space below which MAIL gets 452 4.3.1."""
    return min_free(postfix_message_size_limit(max_message_size))


def mss(mtu: int) -> int:
    """The TCP MSS the SMTP listeners advertise for network.mtu; 0 (no MTU set): none."""
    return mtu - TCP_IP_HEADERS if mtu else 0


def upload_max_mb(wanted_mb: int, max_message_size: int) -> int:
    """webmail.upload_max_mb (WANTED_MB), lowered so that a file this size still fits the mail size
    limit once base64-encoded; at least 1."""
    num, den = ATTACHMENT_SHARE
    fits = max_message_size * num // den // MB
    return max(1, min(wanted_mb, fits))


def post_max_mb(wanted_mb: int, max_message_size: int) -> int:
    """PHP's post_max_size, in MB."""
    return upload_max_mb(wanted_mb, max_message_size) + FORM_ALLOWANCE_MB


def request_max_mb(wanted_mb: int, max_message_size: int) -> int:
    """nginx's client_max_body_size for webmail, in MB."""
    return post_max_mb(wanted_mb, max_message_size) + NGINX_ALLOWANCE_MB
