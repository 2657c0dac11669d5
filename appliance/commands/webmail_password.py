"""`appliance webmail-password`: a user changes their own password in Roundcube.

Roundcube's password plugin runs it through its `appliance` driver
(rootfs/usr/share/roundcube/plugins/password/drivers/appliance.php) as root with
`sudo -n`: the one command rootfs/etc/sudoers.d/webmail-password allows www-data, with
no arguments. Standard input holds three lines: the user name, the current password and
the new one. Nothing changes unless the current password matches the stored hash, so
whoever controls www-data can change only a password they already know. The new one then
takes `appliance user passwd`'s steps: the strength check (system.password_strength),
the hash, the apply.

Exit status, which the driver maps to the plugin's codes: 0 changed, 3 the current
password is wrong, 4 the new one is refused (the reason, on standard error, is shown to
the user); anything else is an internal error.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from appliance import accounts, paths
from appliance.config import Config, load
from appliance.smtpd.auth import check_password, hash_password

CHANGED, WRONG_CURRENT, REFUSED = 0, 3, 4
# A wrong current password costs this long, so that guessing through webmail is slow.
FAILURE_DELAY_S = 1.0
# Three lines, each well under bcrypt's 72 bytes or a user name: more is not a request.
MAX_INPUT = 4096


def account(config: Config, login: str) -> str | None:
    """The user a Roundcube login names, as Dovecot reads it (auth_username_format %Ln):
    "alice", "Alice" or "alice@<one of our domains>"."""
    name, _, domain = login.strip().lower().partition("@")
    if domain and domain not in config.mailbox_domains:
        return None
    return name if name in config.data["users"] else None


def main(stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> int:
    lines = stdin.read(MAX_INPUT).split("\n")
    if len(lines) < 3:
        print("expected three lines: user, current password, new password", file=stderr)
        return 2
    login, current, new = (line.removesuffix("\r") for line in lines[:3])
    config = load(paths.CONFIG)
    name = account(config, login)
    stored = config.data["users"][name]["password"] if name else ""
    # check_password spends bcrypt's time for an unknown user too
    if not check_password(current.encode(), stored) or name is None:
        time.sleep(FAILURE_DELAY_S)
        print("The current password is wrong.", file=stderr)
        return WRONG_CURRENT
    problem = accounts.check_password(config, name, new)  # as `appliance user passwd`
    password_hash = ""
    if problem is None:
        try:
            password_hash = hash_password(new)
        except ValueError as e:  # over bcrypt's 72 bytes
            problem = str(e)
    if problem is not None:
        print(f"The new password is refused: {problem}.", file=stderr)
        return REFUSED
    from appliance.apply import commit

    accounts.set_password(config, name, password_hash)
    commit(config)  # a ConfigError here is an internal error (the CLI's exit 2)
    return CHANGED


def run(args: argparse.Namespace) -> int:
    """The verb: no arguments (sudoers allows exactly `appliance webmail-password`)."""
    return main()
