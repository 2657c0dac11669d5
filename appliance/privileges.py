"""Dropping root once a daemon has bound what needs it (the SMTP daemons, the policy
server)."""

from __future__ import annotations

import os
import pwd


def drop_privileges(user: str) -> None:
    """Become USER, with its own groups only (clamav's, for clamd's socket); nothing
    when not root."""
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    os.initgroups(user, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
