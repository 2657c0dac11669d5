"""count_unrecognized_commands: hangs up on clients that keep sending commands we do not
know (SME count_unrecognized_commands).

Real mail servers speak SMTP; a client that sends `threshold` unknown commands is most
likely an HTTP request pushed through an open proxy, or a scanner. Below the threshold
the server answers each one with its usual 500; at the threshold we answer 521 and close
(qpsmtpd's DENY_DISCONNECT at this hook), which costs the client a karma point.
"""

from __future__ import annotations

from appliance.smtpd import replies
from appliance.smtpd.hooks import Connection
from appliance.smtpd.plugins import BasePlugin, Context
from appliance.smtpd.results import Result, deny_disconnect
from appliance.smtpd.settings import Settings

COUNT_NOTE = "count_unrecognized_commands"  # our own count: the handler keeps another


class Plugin(BasePlugin):
    name = "count_unrecognized_commands"

    def __init__(self, settings: Settings, ctx: Context) -> None:
        super().__init__(settings, ctx)
        self.threshold = settings.plugin_settings.count_unrecognized_commands.threshold

    async def hook_unrecognized_command(self, conn: Connection, cmd: str) -> Result | None:
        count = int(conn.notes.get(COUNT_NOTE, 0)) + 1  # type: ignore[call-overload]
        conn.notes[COUNT_NOTE] = count
        if count < self.threshold:
            return None
        conn.karma -= 1
        self.log.info("%s: %d unrecognized commands (last %r), disconnecting",
                      conn.remote_ip, count, cmd[:32])
        return deny_disconnect(replies.UNRECOGNIZED_LIMIT)
