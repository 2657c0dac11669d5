"""The events plugins see, as documented dataclasses.

A plugin is a class with async methods named after the hooks it handles:

    hook_connect(conn)                    after accept, before the greeting
    hook_helo(conn, host)                 HELO or EHLO
    hook_auth(conn, user, success)        after each AUTH attempt (user "" if undecodable)
    hook_mail(conn, txn, sender)          MAIL FROM (sender "" is the null sender)
    hook_rcpt(conn, txn, recipient)       each RCPT TO; someone must return OK
    hook_data(conn, txn)                  DATA, before the 354
    hook_data_post(conn, txn)             after the final dot: check or change the message
    hook_queue(conn, txn)                 the message is final (e.g. DKIM signing), just
                                          before the hand-off to Postfix
    hook_unrecognized_command(conn, cmd)  a command we do not know
    hook_disconnect(conn)                 the connection is gone (result ignored)

Each returns a `Result` (or None, meaning DECLINED).

State of the session (the chain in use, the open transaction, the authentication
results plugins hand each other) is a typed field below; `notes` is only for a plugin's
own scratch space, which no other module reads.
"""

from __future__ import annotations

import asyncio
import email.policy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from appliance.smtpd.pipeline import Pipeline, Pipelines

HOOKS = ("connect", "helo", "auth", "mail", "rcpt", "data", "data_post", "queue",
         "unrecognized_command", "disconnect")


class SpfCheck(NamedTuple):
    """The spf plugin's verdict on the envelope sender (or the HELO name), for dmarc."""

    result: str  # pass, fail, softfail, neutral, none, temperror, permerror
    explanation: str
    domain: str  # the domain checked: the MAIL FROM domain, else the HELO name


class DkimSignature(NamedTuple):
    """One DKIM-Signature the dkim plugin checked, for dmarc and the reports."""

    domain: str
    selector: str
    passed: bool
    reason: str  # "pass", "fail (body hash mismatch)", "temperror (DNS timeout)", ...

    @property
    def result(self) -> str:
        return self.reason.split(" ", 1)[0]

    @property
    def detail(self) -> str:
        return self.reason.partition(" ")[2].strip("()")


@dataclass
class Connection:
    """One client connection, for its whole life."""

    daemon: str  # "smtp", "smtps" or "submission"
    remote_ip: str
    remote_port: int
    local_port: int
    tls: bool = False  # implicit TLS or after STARTTLS
    tls_version: str = ""
    helo: str = ""
    esmtp: bool = False
    auth_user: str = ""  # set after a successful AUTH
    relay_client: bool = False  # may relay without AUTH (set by the relay plugin)
    whitelisted: bool = False  # exempt from the spam checks (whitelists plugin)
    peer: str = "internet"  # the chain in use: internet, local or authenticated
    naughty: tuple[str, str] | None = None  # (reply, plugin): refuse later (naughty)
    karma: int = 0  # good minus bad points given by plugins (karma)
    refused_recipients: int = 0  # in this session, all transactions (tarpit)
    helo_whitelisted: bool = False  # the HELO name is whitelisted (whitelists; helo skips)
    # Set by the handler at connect: the daemon's chains (kept for the connection's life,
    # even across a reload) and the one for the current peer class (changes after AUTH).
    pipelines: Pipelines | None = field(default=None, repr=False)
    pipeline: Pipeline | None = field(default=None, repr=False)
    transaction: Transaction | None = None  # MAIL FROM accepted, not yet ended
    name_lookup: asyncio.Future[str] | None = field(default=None, repr=False)  # received
    notes: dict[str, object] = field(default_factory=dict)  # a plugin's own scratch space
    timings: dict[str, float] = field(default_factory=dict)  # plugin -> seconds
    started: float = field(default_factory=time.monotonic)
    # Set by the server: has the client sent bytes we have not read yet (earlytalker)?
    input_pending: Callable[[], bool] = field(default=lambda: False, repr=False)

    @property
    def authenticated(self) -> bool:
        return bool(self.auth_user)

    @property
    def trusted(self) -> bool:
        """Spam checks skip trusted clients: our users, relay clients, whitelisted hosts."""
        return self.authenticated or self.relay_client or self.whitelisted


@dataclass
class Transaction:
    """One MAIL FROM ... end of DATA (or RSET)."""

    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (rcpt, plugin, reply)
    bcc: list[str] = field(default_factory=list)  # extra envelope recipients (bcc plugin)
    whitelisted: bool = False  # the sender is whitelisted (whitelists plugin)
    spf: SpfCheck | None = None  # set by the spf plugin at MAIL
    dkim: list[DkimSignature] | None = None  # set by the dkim plugin at data_post
    # Authentication-Results parts ("spf=pass smtp.mailfrom=example.net"), in order;
    # the last plugin of spf, dkim and dmarc in the chain writes the one header.
    auth_results: list[str] = field(default_factory=list)
    received_id: str = ""  # the id in our Received line
    queue_id: str = ""  # Postfix's queue id once handed off
    notes: dict[str, object] = field(default_factory=dict)  # a plugin's own scratch space
    started: float = field(default_factory=time.monotonic)
    _data: bytes = b""
    _message: EmailMessage | None = None

    @property
    def data(self) -> bytes:
        """The message as it will be queued (CRLF line ends)."""
        return self._data

    @data.setter
    def data(self, value: bytes) -> None:
        self._data = value
        self._message = None

    @property
    def message(self) -> EmailMessage:
        """The message parsed (cached until `data` changes); do not mutate it."""
        if self._message is None:
            msg = BytesParser(policy=email.policy.default).parsebytes(self._data)
            assert isinstance(msg, EmailMessage)
            self._message = msg
        return self._message

    async def parsed(self) -> EmailMessage:
        """`message`, parsed in a worker thread: a 20 MB message takes a third of a
        second, which must not stall every other session on the event loop."""
        if self._message is None:
            await asyncio.to_thread(lambda: self.message)
        return self.message

    @property
    def header_bytes(self) -> bytes:
        end = self._data.find(b"\r\n\r\n")
        return self._data if end < 0 else self._data[: end + 2]

    def prepend_header(self, name: str, value: str) -> None:
        """Add a header line at the top (trace-header style), folded if long."""
        line = f"{name}: {value}"
        self.data = line.encode("utf-8", "surrogateescape") + b"\r\n" + self._data
