"""The container healthcheck: the appliance is healthy when it answers SMTP and IMAP.

Not "a process exists": it speaks the protocols, on loopback, with short timeouts.
"""

from __future__ import annotations

import imaplib
import smtplib

TIMEOUT_S = 5.0


def check_smtp(port: int = 25) -> str | None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT_S) as s:
            code, _ = s.ehlo("healthcheck.invalid")
            if code != 250:
                return f"SMTP {port}: EHLO answered {code}"
            s.noop()
    except (OSError, smtplib.SMTPException) as e:
        return f"SMTP {port}: {e}"
    return None


def check_handoff(port: int = 10025) -> str | None:
    return check_smtp(port)


def check_imap(port: int = 143) -> str | None:
    try:
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT_S)
        imap.logout()
    except (TimeoutError, OSError, imaplib.IMAP4.error) as e:
        return f"IMAP {port}: {e}"
    return None


def problems(imap_enabled: bool = True) -> list[str]:
    checks = [check_smtp(), check_handoff()]
    if imap_enabled:
        checks.append(check_imap())
    return [p for p in checks if p]
