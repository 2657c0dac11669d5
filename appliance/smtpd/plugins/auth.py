"""auth: SMTP AUTH policy (SME Authentication): mechanisms, and hanging up on guessers.

The password check itself is the daemon's (appliance.smtpd.auth); this plugin sees the
outcome of every attempt. After `max_failures` failed attempts on one connection it
answers 421 and hangs up: a password guesser then pays a new connection (and the
per-address connection limit) for every few guesses instead of trying all night on one.
A failure costs a karma point and a success earns one, as in qpsmtpd.

`mechanisms` (PLAIN, LOGIN) is checked here once; the server offers what it lists.
"""

from __future__ import annotations

from typing import Any

from appliance.smtpd.hooks import Connection
from appliance.smtpd.plugins import BasePlugin, Context, PluginError
from appliance.smtpd.results import Result, denysoft_disconnect

MECHANISMS = ("PLAIN", "LOGIN")
FAILURES_NOTE = "auth_failures"
TOO_MANY = "421 4.7.0 Too many failed authentications, goodbye"


class Plugin(BasePlugin):
    name = "auth"

    def __init__(self, settings: dict[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        mechanisms = self.config.get("mechanisms", list(MECHANISMS))
        if not isinstance(mechanisms, list | tuple) or not mechanisms:
            raise PluginError("auth: mechanisms must be a non-empty list")
        self.mechanisms = tuple(dict.fromkeys(str(m).upper() for m in mechanisms))
        unknown = [m for m in self.mechanisms if m not in MECHANISMS]
        if unknown:
            raise PluginError(f"auth: unknown mechanism(s) {', '.join(unknown)}; "
                              f"available: {', '.join(MECHANISMS)}")
        self.max_failures = self.config.get("max_failures", 3)
        if type(self.max_failures) is not int or self.max_failures < 1:
            raise PluginError("auth: max_failures must be a whole number of at least 1")

    async def hook_auth(self, conn: Connection, user: str, success: bool) -> Result | None:
        if success:
            conn.notes.pop(FAILURES_NOTE, None)
            conn.karma += 1
            return None
        failures = int(conn.notes.get(FAILURES_NOTE, 0)) + 1  # type: ignore[call-overload]
        conn.notes[FAILURES_NOTE] = failures
        conn.karma -= 1
        if failures >= self.max_failures:
            self.log.info("%s: %d failed authentications (last user %r), disconnecting",
                          conn.remote_ip, failures, user[:64])
            return denysoft_disconnect(TOO_MANY)
        return None
