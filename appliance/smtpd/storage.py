"""Free space on the queue's file system, checked at MAIL FROM.

Postfix refuses MAIL with 452 4.3.1 when its queue file system has less than
queue_minfree free (rendered as 1.5 x message_size_limit, Postfix's documented rule).
The daemons apply the same number before the client sends a body that could only be
refused at the end of DATA; the hand-off passes Postfix's own 452 through as well.
"""

from __future__ import annotations

import logging
import os

from appliance.limits import min_free as min_free

log = logging.getLogger("appliance.smtpd.storage")


def free_bytes(path: str) -> int | None:
    """Free bytes for an unprivileged writer at path; None if it cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError as e:
        log.warning("cannot check free space at %s: %s", path, e)
        return None
    return st.f_bavail * st.f_frsize


def has_room(path: str, minimum: int, declared: int = 0) -> bool:
    """Whether a message may start (declared: its ESMTP SIZE, 0 if none). False only
    when space is known to be short: an unreadable path leaves the verdict to Postfix,
    which checks the same thing at its own MAIL FROM."""
    free = free_bytes(path)
    return free is None or free >= max(minimum, min_free(declared))


def declared_size(mail_options: list[str]) -> int:
    for option in mail_options:
        key, _, value = option.partition("=")
        if key.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0
