"""auth: SMTP AUTH policy (SME Authentication): mechanisms, and hanging up on guessers.

The password check itself is the daemon's (appliance.smtpd.auth); this plugin sees the
outcome of every attempt. After `max_failures` failed attempts on one connection it
answers 421 and hangs up: a password guesser then pays a new connection (and the
per-address connection limit) for every few guesses instead of trying all night on one.
A failure costs a karma point and a success earns one, as in qpsmtpd.

`mechanisms` (PLAIN, LOGIN) is checked here once; the server offers what it lists.
"""

from __future__ import annotations

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, denysoft_disconnect
from appliance.smtpd.settings import Settings

MECHANISMS = ("PLAIN", "LOGIN")
FAILURES_NOTE = "auth_failures"


class Plugin(BasePlugin):
    name = "auth"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        config = settings.plugin_settings.auth
        self.mechanisms = tuple(dict.fromkeys(m.upper() for m in config.mechanisms))
        self.max_failures = config.max_failures

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
            return denysoft_disconnect(replies.AUTH_TOO_MANY_FAILURES)
        return None
