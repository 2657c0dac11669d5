"""The abuse defence's home: the ban store on the volume and the rules every service
that checks a password reads (appliance.security.bans).

Dovecot (IMAP, POP3, ManageSieve, and so the webmail) asks its policy server, which
supervisord runs from here (`appliance security-policy`, appliance.security.policy).
The store belongs to the SMTP daemons' user, which the policy server runs as too;
root's `appliance ban` writes it in place (a rollback journal, so no side file is left
owned by root).
"""

from __future__ import annotations

import json
import os
import pwd

from appliance import paths
from appliance.config import Config
from appliance.security.bans import BanStore, rules_from_config, rules_to_dict
from appliance.services.base import (
    Change,
    Health,
    Program,
    RenderedFile,
    Runner,
    Service,
    installed_command,
    said,
    supervisorctl,
)
from appliance.services.network.interfaces import Route, routes

POLICY_PROGRAM = "security-policy"  # Dovecot's auth policy server (security/policy.py)


def default_routes() -> list[Route]:
    return [r for r in routes() if r.destination == "default"]


def render(config: Config) -> list[RenderedFile]:
    rules = rules_from_config(config.data)
    text = json.dumps(rules_to_dict(rules), indent=2, sort_keys=True) + "\n"
    return [RenderedFile(paths.SECURITY_JSON, text, mode=0o644)]


def open_store(config: Config) -> BanStore:
    """The store with the rules of CONFIG (for the CLI, status and the console)."""
    return BanStore(paths.BANS_DB, rules_from_config(config.data))


class Security(Service):
    name = "security"

    render = staticmethod(render)

    def programs(self, config: Config) -> list[Program]:
        # before Dovecot (priority 10), which asks it at every login; it runs even with
        # security.enabled off (it then allows everything): Dovecot's settings stay put
        return [Program(POLICY_PROGRAM, f"{installed_command('appliance')} security-policy",
                        priority=5, stopwait=5)]

    def reload(self, change: Change, run: Runner) -> list[str]:
        """New rules: the policy server re-reads security.json on SIGHUP (the SMTP
        daemons read theirs from smtpd.json). A server supervisord has just started
        read them already."""
        if paths.SECURITY_JSON not in change.paths or POLICY_PROGRAM not in change.running():
            return []
        return [said(f"{POLICY_PROGRAM}: reload",
                     supervisorctl(run, "signal", "HUP", POLICY_PROGRAM))]

    def health(self, config: Config | None) -> Health:
        """How many addresses are banned, which accounts are being guessed at; a ban on
        the default gateway is a problem: when clients reach the appliance through
        Docker's userland proxy they all come from it, so it locks everyone out."""
        if config is None or not config.data["security"]["enabled"]:
            return Health(facts=["bans: off (security.enabled)"])
        import sqlite3

        store = open_store(config)
        try:
            bans = store.bans()
            accounts = store.accounts_under_attack()
            gateways = [r.gateway for r in default_routes() if r.gateway]
            banned_gateways = [g for g in gateways if store.banned(g) is not None]
        except sqlite3.Error as e:
            return Health(problems=[f"the ban store cannot be read: {e}"])
        finally:
            store.close()
        health = Health(facts=[f"bans: {len(bans)} address(es) banned (`appliance ban "
                               "list`)" if bans else "bans: none"])
        health.facts += [f"account {a}: {n} failed logins in the last hour, its logins "
                         "slowed" for a, n in accounts]
        health.problems += [f"the default gateway {g} is banned: clients that reach the "
                            "appliance through Docker's proxy all come from it; `appliance "
                            f"ban remove {g}`, see README 'Password guessing'"
                            for g in banned_gateways]
        return health

    def prepare(self) -> None:
        owner = pwd.getpwnam(paths.SECURITY_USER)
        paths.SECURITY_DIR.mkdir(exist_ok=True)
        os.chown(paths.SECURITY_DIR, owner.pw_uid, owner.pw_gid)
        os.chmod(paths.SECURITY_DIR, 0o700)
        # made here, as root, so that its owner is right whoever opens it first
        paths.BANS_DB.touch(exist_ok=True)
        os.chown(paths.BANS_DB, owner.pw_uid, owner.pw_gid)
        os.chmod(paths.BANS_DB, 0o600)
