"""Where things live inside the container. Tests point APPLIANCE_ROOT at a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

# Everything generated is written below ROOT ("/" in the container); state lives in DATA.
ROOT = Path(os.environ.get("APPLIANCE_ROOT", "/"))
DATA = Path(os.environ.get("APPLIANCE_DATA", str(ROOT / "var/lib/appliance")))

CONFIG = DATA / "appliance.toml"
# The volume's format and the release that last wrote it (appliance.migrations.version)
VERSION = DATA / "VERSION"
# A migration's journal: copies of what its steps change, undone if one fails
MIGRATION_JOURNAL = DATA / ".migration"
TLS_DIR = DATA / "tls"
TLS_CERT = TLS_DIR / "cert.pem"
TLS_KEY = TLS_DIR / "key.pem"
# tls.acme: the account key and the renewal state (appliance.certificates); the pair
# replaced by the last renewal
ACME_DIR = TLS_DIR / "acme"
TLS_PREVIOUS = TLS_DIR / "previous"
# HTTP-01 answers, served by nginx on port 80 at /.well-known/acme-challenge/
ACME_CHALLENGES = Path("/run/appliance/acme-challenge") if ROOT == Path("/") else \
    ROOT / "run/appliance/acme-challenge"
MAIL_DIR = DATA / "mail"
# Mailboxes of deleted users (NAME-YYYYmmddTHHMMSSZ): kept, but no new user of that name
# gets them
MAIL_ARCHIVE = DATA / "archive"
POSTFIX_QUEUE = DATA / "postfix"
SMTPD_STATE = DATA / "smtpd"  # karma, greylisting, DMARC records (owned by qpsmtpd)
SECURITY_DIR = DATA / "security"  # the ban store, shared by every service that logs in
BANS_DB = SECURITY_DIR / "bans.sqlite"
DKIM_KEYS = DATA / "dkim"  # default/{private,public,selector}, DOMAIN/... (SME dkim_keys)

ETC = ROOT / "etc"
SMTPD_JSON = "/etc/appliance/smtpd.json"  # as the daemons see it
SMTPD_CONFIG = ROOT / SMTPD_JSON.lstrip("/")
SECURITY_JSON = "/etc/appliance/security.json"  # the ban rules, for the policy server
SECURITY_CONFIG = ROOT / SECURITY_JSON.lstrip("/")
SECURITY_USER = "qpsmtpd"  # owns the ban store; the SMTP daemons run as it
# Dovecot's auth policy server (appliance.security.policy): qpsmtpd's, group dovecot
SECURITY_POLICY_SOCKET = Path("/run/appliance/security-policy.sock")
# Client autoconfig (appliance.autoconfig): what the documents say, and the server's
# socket (nobody's, group www-data: nginx passes it the requests)
AUTOCONFIG_JSON = "/etc/appliance/autoconfig.json"
AUTOCONFIG_CONFIG = ROOT / AUTOCONFIG_JSON.lstrip("/")
AUTOCONFIG_SOCKET = Path("/run/appliance/autoconfig.sock")
SUPERVISOR_SOCKET = Path("/run/appliance/supervisor.sock")
# Fingerprint of the certificate and key the running services loaded (appliance.tls)
TLS_IN_USE = Path("/run/appliance/tls-in-use")
# The SMTP daemons' copy of that pair, and which pair each serves (serving-NAME)
SMTPD_TLS = Path("/run/appliance/smtpd-tls")
SPAMASSASSIN_DIR = DATA / "spamassassin"  # spamd's home: the Bayes database
CLAMAV_DB = DATA / "clamav"  # signatures (freshclam's downloads, or dropped in by hand)
# Postfix's listener for the SMTP daemons' (and fetchmail's) hand-off: loopback only
HANDOFF_ADDRESS = ("127.0.0.1", 10025)
DOVECOT_PID = Path("/run/dovecot/master.pid")
SPAMD_SOCKET = Path("/run/spamd/spamd.sock")
CLAMD_SOCKET = Path("/run/clamav/clamd.ctl")
UNBOUND_DIR = DATA / "unbound"  # the DNSSEC trust anchor Unbound keeps up to date
UNBOUND_ROOT_KEY = UNBOUND_DIR / "root.key"
UNBOUND_CONTROL = Path("/run/unbound/control.sock")
TERSE_LOG_DIR = Path("/var/log/appliance")  # the SMTP daemons' transaction lines
SPAMD_USER = "debian-spamd"  # Debian's spamd package
CLAMAV_USER = "clamav"
