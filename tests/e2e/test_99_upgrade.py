"""The upgrade from the previous release (issue 20): the template for every release.

A project of its own ("appliance-upgrade", compose.upgrade.yaml: its own network, data
volume, DNS server and remote mail server) boots the previous release's image, built
from git by tools/release-image.sh (the commit is in tests/e2e/previous-release), and
fills its volume the way a site does: two users with passwords, mail in alice's INBOX
and junkmail, a message deferred in the queue (its remote server is down), changed
settings, a Roundcube preference, a POP3 client's UIDLs. Then the container stops, the
new image (appliance:latest) boots on the same volume, and each test below proves one
thing survived; the last one shows a volume from a newer version is refused untouched.

At a release: bump tests/e2e/previous-release; add to `fill` what the new release keeps
on the volume, and a test that it survives the next upgrade. UPGRADE_TO=IMAGE upgrades
to another image than appliance:latest (the harness can be tried with the previous
release's own image: only the tests of what the new release changed fail then).
"""

from __future__ import annotations

import collections
import http.cookiejar
import imaplib
import json
import os
import poplib
import re
import shutil
import smtplib
import subprocess
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ALICE_PASSWORD,
    DOMAIN,
    ROOT,
    UP_TIMEOUT_S,
    Appliance,
    TestDNS,
    container_ip,
    start_appliance,
    wait_for,
)
from tests.e2e.mail import TIMEOUT_S, message, tls_context
from tests.e2e.plugins import add_user, body, changed, dialogue, uid
from tests.samples import GTUBE

pytestmark = pytest.mark.e2e

PROJECT = "appliance-upgrade"
VOLUME = f"{PROJECT}_data"
# The image to upgrade to: this tree's (`make image`), or another one to try.
NEW_IMAGE = os.environ.get("UPGRADE_TO", "appliance:latest")
STATE = Path(os.environ.get("UPGRADE_STATE", "/tmp/appliance-upgrade"))
COMPOSE = [
    "docker", "compose", "-p", PROJECT,
    "-f", str(ROOT / "compose.yaml"), "-f", str(ROOT / "tests/e2e/compose.upgrade.yaml"),
]
# One more overlay (written by the fixture) names the image the appliance runs: the
# previous release's, then the new one.
PREVIOUS_OVERLAY, NEW_OVERLAY = STATE / "previous.yaml", STATE / "new.yaml"
PREVIOUS = [*COMPOSE, "-f", str(PREVIOUS_OVERLAY)]
NEW = [*COMPOSE, "-f", str(NEW_OVERLAY)]
RELEASE_BUILD_TIMEOUT_S = 3600  # a cold build (no layers cached) installs every package

CLIENT_IP = "203.0.113.1"  # the host on this project's network: the internet
SINK_IP = "203.0.113.26"
DATA = "/var/lib/appliance"
VERSION_FILE = f"{DATA}/VERSION"  # first line "format N" (appliance/migrations)
BOB_PASSWORD = "Bob-upgrade-passw0rd"
PASSWORDS = {"alice": ALICE_PASSWORD, "bob": BOB_PASSWORD}
PAGESIZE = "37"  # alice's Roundcube preference: messages a page (mail_pagesize)
# The settings changed under the old image: how (SME's way and ours), and the value each
# key must have after the upgrade under its (new) name.
SETTINGS_COMMANDS = (
    "config setprop qmail ConcurrencyRemote 7 && config setprop spamassassin Sensitivity "
    "custom TagLevel 4 RejectLevel 12 SortSpam enabled SubjectTag enabled && "
    "signal-event email-update",
    "appliance config set spamassassin.scores 'GTUBE 6'",  # tagged, not refused: junkmail
    "appliance config set tls.tls_min_version TLSv1.3",
)
OLD_SETTINGS = {"queue.concurrency_remote": "7", "spamassassin.tag_level": "4.0",
                "spamassassin.scores": '["GTUBE 6"]', "tls.tls_min_version": '"TLSv1.3"'}
RENAMED = {"tls.tls_min_version": "tls.min_version"}  # the 2.x release renamed it


def previous_release() -> str:
    lines = (ROOT / "tests/e2e/previous-release").read_text().splitlines()
    return next(line.strip() for line in lines if line.strip() and not line.startswith("#"))


# -- what the volume holds, as clients and files see it -------------------------------

def imap(ip: str, user: str, password: str) -> imaplib.IMAP4:
    box = imaplib.IMAP4(ip, 143, timeout=TIMEOUT_S)
    box.starttls(ssl_context=tls_context())
    box.login(user, password)
    return box


def message_ids(ip: str, user: str) -> dict[str, list[str]]:
    """Every folder's Message-IDs, sorted, duplicates kept."""
    box = imap(ip, user, PASSWORDS[user])
    try:
        _, listing = box.list()
        folders = []
        for line in listing:
            name = re.match(rb'\(.*?\) (?:"."|NIL) (.*)$', line)  # type: ignore[arg-type]
            assert name, line
            folders.append(name[1].decode().strip('"'))
        found: dict[str, list[str]] = {}
        for folder in folders:
            box.select(f'"{folder}"', readonly=True)
            _, nums = box.search(None, "ALL")
            ids = []
            for num in nums[0].split():
                _, parts = box.fetch(num, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                head = parts[0][1].decode()  # type: ignore[index,union-attr]
                ids.append(head.split(":", 1)[1].strip())
            found[folder] = sorted(ids)
        return found
    finally:
        box.logout()


def pop3_uidls(ip: str, user: str, password: str) -> list[bytes]:
    pop = poplib.POP3(ip, 110, timeout=TIMEOUT_S)
    pop.stls(context=tls_context())
    try:
        pop.user(user)
        pop.pass_(password)
        return pop.uidl()[1]
    finally:
        pop.quit()


def key_hashes(app: Appliance) -> dict[str, str]:
    """sha256 of every DKIM key file and of the TLS certificate and key."""
    out = app.exec("sh", "-c", f"find {DATA}/dkim {DATA}/tls -type f -print0 | sort -z | "
                               "xargs -0 sha256sum").stdout
    hashes = {path: digest for digest, path in (line.split(None, 1) for line in
                                                out.splitlines())}
    assert f"{DATA}/tls/key.pem" in hashes and any("/dkim/" in p for p in hashes), hashes
    return hashes


def setting(app: Appliance, key: str) -> str:
    return app.exec("appliance", "config", "get", key).stdout.strip()


def volume_listing() -> str:
    """Every file on the (stopped) volume: path, type, mode, owner, size, mtime and a
    hash of its content; folders without their mtime."""
    script = ("cd /v && find . -printf '%p %y %m %U:%G %s ' "
              "\\( -type f -printf '%T@ ' -exec sha256sum {} \\; \\) -o -printf '\\n'")
    return subprocess.run(
        ["docker", "run", "--rm", "-v", f"{VOLUME}:/v:ro", "--entrypoint", "sh", NEW_IMAGE,
         "-c", script], capture_output=True, text=True, check=True, timeout=120).stdout


class Webmail:
    """One browser's session with Roundcube, over plain HTTPS forms."""

    def __init__(self, ip: str) -> None:
        self.base = f"https://{ip}/webmail/"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            urllib.request.HTTPSHandler(context=tls_context()))

    def get(self, query: str) -> str:
        with self.opener.open(self.base + query, timeout=TIMEOUT_S) as r:
            return r.read().decode(errors="replace")

    def post(self, query: str, form: dict[str, str]) -> tuple[str, str]:
        data = urllib.parse.urlencode(form).encode()
        with self.opener.open(self.base + query, data=data, timeout=TIMEOUT_S) as r:
            return r.geturl(), r.read().decode(errors="replace")

    @staticmethod
    def token(page: str) -> str:
        found = re.search(r'name="_token" value="([^"]+)"', page) or re.search(
            r'"request_token":"([^"]+)"', page)
        assert found, "no request token on the page"
        return found[1]

    def login(self, user: str, password: str) -> bool:
        token = self.token(self.get(""))
        try:
            url, _ = self.post("?_task=login", {
                "_token": token, "_task": "login", "_action": "login", "_timezone": "UTC",
                "_url": "", "_user": user, "_pass": password})
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return False
            raise
        return "_task=mail" in url

    MAILBOX_PREFS = "?_task=settings&_action=edit-prefs&_section=mailbox&_framed=1"

    def save_pagesize(self, size: str) -> None:
        page = self.get(self.MAILBOX_PREFS)
        self.post("?_task=settings&_action=save-prefs", {
            "_token": self.token(page), "_section": "mailbox", "_framed": "1",
            "_layout": "widescreen", "_mail_read_time": "0", "_autoexpand_threads": "0",
            "_mail_pagesize": size})

    def pagesize(self) -> str:
        page = self.get(self.MAILBOX_PREFS)
        field_ = re.search(r'<input[^>]*name="_mail_pagesize"[^>]*>', page)
        assert field_, page[:2000]
        value = re.search(r'value="([^"]*)"', field_[0])
        assert value, field_[0]
        return value[1]


def sink_messages() -> list[bytes]:
    return [p.read_bytes() for p in sorted((STATE / "sink").glob("*.eml"))]


# -- the volume before and after -------------------------------------------------------

@dataclass
class Before:
    """What the previous release's volume held, as recorded before the upgrade."""

    message_ids: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    uidls: list[bytes] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    toml_sha256: str = ""
    queued: dict[str, Any] = field(default_factory=dict)  # the deferred message
    queued_subject: str = ""
    junk_subject: str = ""


@dataclass
class Upgraded:
    app: Appliance
    before: Before
    first_boot_log: str


def zones() -> None:
    """The test zones for this network: remote.test's MX is the sink."""
    dns = TestDNS(STATE / "zones.json")
    spf = [f"v=spf1 ip4:{CLIENT_IP} ~all"]
    for name in ("remote.test", "sender.test"):
        dns.names[name] = {"MX": ["10 sink.remote.test."], "A": [SINK_IP], "TXT": spf}
    dns.names["sink.remote.test"] = {"A": [SINK_IP]}
    dns.write()


def fill(app: Appliance) -> Before:
    """Under the previous release: the state a site has, recorded."""
    before = Before()
    add_user(app, "bob", BOB_PASSWORD)
    changed(app, *SETTINGS_COMMANDS)
    for user in ("alice", "bob", "alice"):
        d = dialogue(app.ip, recipients=(f"{user}@{DOMAIN}",),
                     data=body(f"inbox-{uid()}", to=f"{user}@{DOMAIN}"))
        assert d.code("data") == 250, d.replies
    before.junk_subject = f"junk-{uid()}"
    d = dialogue(app.ip, data=body(before.junk_subject, text=f"Hello.\n{GTUBE.decode()}\n"))
    assert d.code("data") == 250, d.replies

    # Mail for a remote domain while its server is down: deferred, kept in the queue.
    app.compose("stop", "sink")
    before.queued_subject = f"queued-{uid()}"
    with smtplib.SMTP(app.ip, 587, timeout=TIMEOUT_S) as s:
        s.starttls(context=tls_context())
        s.login("alice", ALICE_PASSWORD)
        s.send_message(message(f"alice@{DOMAIN}", "carol@remote.test", before.queued_subject))
    before.queued = wait_for(
        lambda: next((m for m in app.queue() if m["queue_name"] == "deferred"), None), 120,
        "the remote message deferred in Postfix's queue", every=1)
    # Everything else delivered: the queue holds that one message only.
    wait_for(lambda: len(app.queue()) == 1, 60, "local deliveries to finish", every=1)

    before.message_ids = {user: message_ids(app.ip, user) for user in PASSWORDS}
    alice = before.message_ids["alice"]
    assert len(alice["INBOX"]) == 2 and len(alice["junkmail"]) == 1, alice
    assert len(before.message_ids["bob"]["INBOX"]) == 1, before.message_ids["bob"]
    assert any(before.junk_subject in mid for mid in alice["junkmail"]), alice

    web = Webmail(app.ip)
    assert web.login("alice", ALICE_PASSWORD)
    web.save_pagesize(PAGESIZE)
    assert web.pagesize() == PAGESIZE

    before.uidls = pop3_uidls(app.ip, "alice", ALICE_PASSWORD)
    assert len(before.uidls) == 2, before.uidls
    before.keys = key_hashes(app)
    before.settings = {key: setting(app, key) for key in OLD_SETTINGS}
    assert before.settings == OLD_SETTINGS
    before.toml_sha256 = app.exec("sha256sum", f"{DATA}/appliance.toml").stdout.split()[0]
    return before


def down() -> None:
    subprocess.run([*COMPOSE, "down", "-v", "--remove-orphans"], capture_output=True,
                   check=False, timeout=UP_TIMEOUT_S)


@pytest.fixture(scope="module")
def upgraded() -> Iterator[Upgraded]:
    release = previous_release()
    build = subprocess.run(["bash", str(ROOT / "tools/release-image.sh"), release],
                           capture_output=True, text=True, check=False,
                           timeout=RELEASE_BUILD_TIMEOUT_S)
    assert build.returncode == 0, f"the previous release's image: {build.stderr}"
    short = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=7", release],
                           capture_output=True, text=True, check=True).stdout.strip()
    down()
    shutil.rmtree(STATE, ignore_errors=True)
    (STATE / "sink").mkdir(parents=True)
    for overlay, image in ((PREVIOUS_OVERLAY, f"appliance:release-{short}"),
                           (NEW_OVERLAY, NEW_IMAGE)):
        overlay.write_text(f"services:\n  appliance:\n    image: {image}\n")
    zones()
    try:
        old = start_appliance(PREVIOUS)
        before = fill(old)
        old.compose("stop")  # the volume stays; the sink stays down
        up = subprocess.run([*NEW, "up", "-d", "--wait", "--wait-timeout",
                             str(UP_TIMEOUT_S), "appliance"], capture_output=True, text=True,
                            check=False, timeout=UP_TIMEOUT_S + 60)
        logs = subprocess.run([*NEW, "logs", "--no-log-prefix", "appliance"],
                              capture_output=True, text=True, check=False).stdout
        assert up.returncode == 0, f"the new image did not come up healthy:\n{up.stderr}\n{logs}"
        container = subprocess.run([*NEW, "ps", "-q", "appliance"], capture_output=True,
                                   text=True, check=True).stdout.strip()
        app = Appliance(container=container, ip=container_ip(container), command=tuple(NEW))
        wait_for(lambda: app.exec("appliance", "status", check=False).returncode == 0, 180,
                 "`appliance status` without problems on the new image")
        yield Upgraded(app, before, logs)
    finally:
        if not os.environ.get("E2E_KEEP"):
            down()


# -- what the upgrade must keep -------------------------------------------------------

def test_the_new_image_runs_debian_13_dovecot_2_4_and_postfix_3_10(upgraded: Upgraded) -> None:
    app = upgraded.app
    assert app.exec("cat", "/etc/debian_version").stdout.startswith("13")
    assert app.exec("dovecot", "--version").stdout.startswith("2.4")
    assert app.exec("postconf", "-h", "mail_version").stdout.startswith("3.10")


def new_format() -> int:
    """The volume format the new image writes, as its own code says."""
    out = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/opt/appliance/bin/python", NEW_IMAGE,
         "-c", "from appliance import migrations; print(migrations.CURRENT_FORMAT)"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    return int(out)


def test_the_volume_records_the_new_format_and_the_first_boot_logged_each_migration(
        upgraded: Upgraded) -> None:
    current = new_format()
    first = upgraded.app.exec("head", "-n", "1", VERSION_FILE).stdout.strip()
    assert first == f"format {current}"
    migrated = [line for line in upgraded.first_boot_log.splitlines() if "migrate: " in line]
    assert any(f"format {current}" in line for line in migrated), \
        upgraded.first_boot_log[-3000:]
    # Roundcube's own schema update ran against the volume's database, and succeeded
    assert "webmail database migration failed" not in upgraded.first_boot_log


def test_every_message_is_still_there_exactly_once(upgraded: Upgraded) -> None:
    after = {user: message_ids(upgraded.app.ip, user) for user in PASSWORDS}
    assert after == upgraded.before.message_ids
    for user, folders in after.items():
        seen = collections.Counter(mid for ids in folders.values() for mid in ids)
        assert all(n == 1 for n in seen.values()), (user, seen)


def test_a_pop3_client_sees_the_same_uidls(upgraded: Upgraded) -> None:
    assert pop3_uidls(upgraded.app.ip, "alice", ALICE_PASSWORD) == upgraded.before.uidls


def test_passwords_work_on_imap_pop3_smtp_auth_and_webmail(upgraded: Upgraded) -> None:
    ip = upgraded.app.ip
    for user, password in PASSWORDS.items():
        imap(ip, user, password).logout()
        pop3_uidls(ip, user, password)
        with smtplib.SMTP(ip, 587, timeout=TIMEOUT_S) as s:
            s.starttls(context=tls_context())
            assert s.login(user, password)[0] == 235
        assert Webmail(ip).login(user, password), f"{user}'s webmail login"
    assert not Webmail(ip).login("alice", "not her password")


def test_the_webmail_preference_stored_under_the_old_image_is_kept(upgraded: Upgraded) -> None:
    web = Webmail(upgraded.app.ip)
    assert web.login("alice", ALICE_PASSWORD)
    assert web.pagesize() == PAGESIZE


def test_settings_and_keys_are_unchanged_and_the_old_settings_file_is_kept(
        upgraded: Upgraded) -> None:
    app, before = upgraded.app, upgraded.before
    assert key_hashes(app) == before.keys
    expected = {RENAMED.get(key, key): value for key, value in OLD_SETTINGS.items()}
    assert {key: setting(app, key) for key in expected} == expected
    toml = tomllib.loads(app.exec("cat", f"{DATA}/appliance.toml").stdout)
    for old in RENAMED:
        section, key = old.rsplit(".", 1)
        assert key not in toml.get(section, {}), toml.get(section)
    # the file as the old image left it, byte for byte, beside the migrated one
    copies = app.exec("sh", "-c", f"sha256sum {DATA}/appliance.toml?*").stdout
    assert before.toml_sha256 in copies, copies


def test_spam_is_still_sorted_into_junkmail(upgraded: Upgraded) -> None:
    """The Sieve script that sorts it was compiled by the old image's Pigeonhole."""
    app, subject = upgraded.app, f"junk-after-{uid()}"
    d = dialogue(app.ip, data=body(subject, text=f"Hello.\n{GTUBE.decode()}\n"))
    assert d.code("data") == 250, d.replies
    wait_for(lambda: any(subject in mid for mid in message_ids(app.ip, "alice")["junkmail"]),
             30, "the new spam in junkmail")


def test_the_message_queued_under_the_old_image_is_delivered_once_by_the_new_one(
        upgraded: Upgraded) -> None:
    app, before = upgraded.app, upgraded.before
    queued = app.queue()
    assert [m["queue_id"] for m in queued] == [before.queued["queue_id"]], queued
    assert sink_messages() == []
    app.compose("up", "-d", "--wait", "sink")
    app.exec("postqueue", "-f")
    got = wait_for(lambda: [m for m in sink_messages() if before.queued_subject.encode() in m],
                   90, "the queued message at the remote server", every=1)
    wait_for(lambda: app.queue() == [], 60, "the queue to drain", every=1)
    got = [m for m in sink_messages() if before.queued_subject.encode() in m]
    assert len(got) == 1 and b"X-Sink-To: <carol@remote.test>" in got[0], got


def inspect_state(app: Appliance) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(subprocess.run(
        ["docker", "inspect", "-f", "{{json .State}}", app.container], capture_output=True,
        text=True, check=True).stdout)
    return state


def test_a_volume_from_a_newer_version_is_refused_and_left_as_it_was(
        upgraded: Upgraded) -> None:
    """Last: the volume says a later release wrote it; the image refuses to touch it."""
    app = upgraded.app
    app.compose("stop", "appliance")
    newer = f"format {new_format() + 1}\nwritten-by a later release (test_99_upgrade)\n"
    subprocess.run(["docker", "run", "--rm", "-i", "-v", f"{VOLUME}:/v", "--entrypoint", "sh",
                    NEW_IMAGE, "-c", "cat > /v/VERSION"], input=newer, text=True, check=True,
                   capture_output=True)
    listing = volume_listing()
    started = inspect_state(app)["StartedAt"]
    app.compose("up", "-d", "appliance")

    def exited() -> dict[str, Any] | None:
        state = inspect_state(app)
        return state if state["Status"] == "exited" and state["StartedAt"] != started else None

    state = wait_for(exited, 120, "the appliance to refuse the volume and exit", every=1)
    logs = subprocess.run(["docker", "logs", "--since", state["StartedAt"], app.container],
                          capture_output=True, text=True, check=True)
    said = logs.stdout + logs.stderr
    assert state["ExitCode"] != 0, said
    assert "newer" in said, said
    assert volume_listing() == listing
