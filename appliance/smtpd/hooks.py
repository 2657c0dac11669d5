"""The events plugins see, as documented dataclasses.

A plugin is a class with async methods named after the hooks it handles:

    hook_connect(conn)                    after accept, before the greeting
    hook_helo(conn, host)                 HELO or EHLO
    hook_mail(conn, txn, sender)          MAIL FROM (sender "" is the null sender)
    hook_rcpt(conn, txn, recipient)       each RCPT TO; someone must return OK
    hook_data_post(conn, txn)             after the final dot, before the hand-off
    hook_disconnect(conn)                 the connection is gone

Each returns a `Result` (or None, meaning DECLINED).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

HOOKS = ("connect", "helo", "mail", "rcpt", "data_post", "disconnect")


@dataclass
class Connection:
    """One client connection, for its whole life."""

    daemon: str  # "smtp", "smtps" or "submission"
    remote_ip: str
    remote_port: int
    local_port: int
    tls: bool = False  # implicit TLS or after STARTTLS
    helo: str = ""
    esmtp: bool = False
    auth_user: str = ""  # set after a successful AUTH
    relay_client: bool = False  # from a local network (set by the relay plugin)
    notes: dict[str, object] = field(default_factory=dict)  # plugins' scratch space
    started: float = field(default_factory=time.monotonic)

    @property
    def authenticated(self) -> bool:
        return bool(self.auth_user)


@dataclass
class Transaction:
    """One MAIL FROM ... end of DATA (or RSET)."""

    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (recipient, plugin)
    data: bytes = b""
    notes: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
