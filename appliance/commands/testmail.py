"""Send a test message through the appliance's own port 25 and keep the transcript.

The console's "send a test message" (console/screens/testmail.py): the message takes the
path a local client's mail takes (the SMTP pipeline, Postfix, then local delivery or the
internet), so the transcript shows what a real sender would see.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from appliance.config import Config

TIMEOUT_S = 60


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    ok: bool
    transcript: list[str] = field(default_factory=list)
    error: str = ""
    message_id: str = ""


class _Recording(smtplib.SMTP):
    """smtplib's own debug output, kept instead of printed."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        super().__init__(timeout=TIMEOUT_S)
        self.set_debuglevel(1)

    def _print_debug(self, *args: object) -> None:
        self._lines.append(" ".join(str(a) for a in args))


def build_message(config: Config, to: str) -> EmailMessage:
    domain = config.data["system"]["domain"]
    msg = EmailMessage()
    msg["From"] = f"postmaster@{domain}"
    msg["To"] = to
    msg["Subject"] = f"Test message from {config.fqdn}"
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = make_msgid(domain=config.fqdn)
    msg.set_content(f"This is a test message sent from the console of {config.fqdn}.\n"
                    "If it reached you, mail from this appliance is delivered.\n")
    return msg


def send_test(config: Config, to: str, host: str = "127.0.0.1", port: int = 25) -> TestResult:
    lines: list[str] = []
    msg = build_message(config, to)
    result = TestResult(ok=False, transcript=lines, message_id=str(msg["Message-ID"]))
    smtp = _Recording(lines)
    try:
        smtp.connect(host, port)
        smtp.ehlo(config.fqdn)
        refused = smtp.send_message(msg, from_addr=str(msg["From"]), to_addrs=[to])
        result.ok = not refused
        smtp.quit()
    except (smtplib.SMTPException, OSError) as e:  # timeouts are OSErrors too
        result.error = str(e) or e.__class__.__name__
        try:
            smtp.close()
        except OSError:
            pass
    return result
