"""Accounts: reserved names, the admin who gets postmaster@, password strength, and the
mailbox of a deleted user (issue 18)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit

from appliance import accounts, paths
from appliance.apply import apply, commit
from appliance.commands import sme, table
from appliance.config import Config, ConfigError, load, parse
from appliance.config.edit import get_value
from appliance.config.load import reserved_name_warnings
from appliance.config.schema import RESERVED_NAMES

ROOT_DIR = Path(__file__).resolve().parents[2]
STRONG = "Alice-e2e-passw0rd"  # the e2e suite's alice, and every e2e password's shape
BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'


# -- reserved names ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ("[users.root]\n", "users.root"),
    ("[users.postmaster]\n", "users.postmaster"),
    ("[users.www-data]\n", "users.www-data"),
    ("[users.dovecot]\n", "users.dovecot"),
    ("[users.alice]\n[groups.everyone]\nmembers = [\"alice\"]\n", "groups.everyone"),
    ("[users.alice]\n[pseudonyms.webmaster]\naccount = \"alice\"\n", "pseudonyms.webmaster"),
    ("[users.alice]\n[pseudonyms.\"mailer-daemon@example.com\"]\naccount = \"alice\"\n",
     "pseudonyms.mailer-daemon@example.com"),
])
def test_a_volume_that_has_a_reserved_name_still_loads_with_a_warning(
        text: str, key: str) -> None:
    # made before the name was reserved: an image upgrade must not stop its mail
    warnings = reserved_name_warnings(parse(BASE + text).data)
    assert len(warnings) == 1 and warnings[0].startswith(f"{key}: ")
    assert "reserved" in warnings[0]


def test_a_pseudonym_webmaster_made_before_keeps_its_address(toml: Path) -> None:
    config = parse(BASE + "[users.alice]\n[users.bob]\n[pseudonyms.webmaster]\n"
                   'account = "bob"\n')
    assert accounts.addresses(config)["webmaster@example.com"] == ["bob@example.com"]
    plan = apply(config, dry_run=True, check=False)  # the boot and every apply log it
    assert any("pseudonyms.webmaster" in w for w in plan.warnings)


def test_the_reserved_list_has_the_role_addresses_and_the_mail_system_accounts() -> None:
    assert {"root", "postmaster", "abuse", "hostmaster", "webmaster", "everyone",
            "mailer-daemon", "nobody", "admin", "administrator", "dmarc-feedback",
            "dovecot", "dovenull", "qpsmtpd", "www-data", "postfix", "vmail", "clamav",
            "debian-spamd", "unbound", "daemon", "mail"} <= RESERVED_NAMES
    # mailboxes are virtual: Debian's generic system groups mean nothing for mail
    assert not {"news", "list", "backup", "video", "audio", "fax", "staff", "users"} \
        & RESERVED_NAMES
    parse(BASE + "[users.alice]\n[groups.news]\nmembers = [\"alice\"]\n")
    # that it holds every account a process of the image runs as:
    # tests/e2e/test_60_administration.py


@pytest.mark.parametrize("role", ["postmaster", "abuse", "hostmaster", "webmaster",
                                  "admin", "administrator", "dmarc-feedback"])
def test_every_reserved_role_address_reaches_the_admin(role: str) -> None:
    config = parse(BASE + "[users.alice]\n[users.bob]\n")
    assert accounts.addresses(config)[f"{role}@example.com"] == ["alice@example.com"]


def test_a_new_entry_with_a_reserved_name_is_refused_however_it_is_made(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = toml.read_text()
    assert table.main(["config", "set", "users.webmaster.full_name", "Web"]) == 2
    assert "users.webmaster" in capsys.readouterr().err and toml.read_text() == before
    assert table.main(["config", "set", "users.web.full_name", "Web"]) == 0  # what it allows


def test_account_commands_refuse_reserved_names() -> None:
    config = parse(BASE + "[users.alice]\n")
    for name in ("root", "nobody", "clamav"):
        with pytest.raises(ConfigError, match="reserved"):
            accounts.add_user(config, name, "")
    with pytest.raises(ConfigError, match="reserved"):
        accounts.add_entry(config, "pseudonyms", "postmaster", {"account": "alice"})
    with pytest.raises(ConfigError, match="reserved"):
        accounts.add_entry(config, "groups", "admin", {"members": ["alice"]})


# -- the admin: postmaster@, abuse@ -----------------------------------------------------

@pytest.fixture
def toml(sandbox: Path) -> Path:
    """appliance.toml in a sandbox (conftest.sandbox)."""
    sandbox.write_text("# kept comment\n" + BASE)
    return sandbox


def user_add(name: str, password: str = STRONG) -> int:
    sys.stdin = io.StringIO(password + "\n")
    try:
        return table.main(["user", "add", name, "--password-stdin"])
    finally:
        sys.stdin = sys.__stdin__


def postmaster(config: Config) -> list[str]:
    return accounts.addresses(config)["postmaster@example.com"]


def test_the_first_user_becomes_the_admin_and_adding_aaron_moves_nothing(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert user_add("alice") == 0
    config = load(toml)
    assert config.data["system"]["admin"] == "alice"  # recorded in the file
    assert "# kept comment" in toml.read_text()
    assert user_add("aaron", "Aaron-e2e-passw0rd") == 0  # sorts before alice
    config = load(toml)
    for role in ("postmaster", "abuse", "dmarc-feedback"):
        assert accounts.addresses(config)[f"{role}@example.com"] == ["alice@example.com"]
    capsys.readouterr()
    assert table.main(["config", "get", "system.admin"]) == 0
    assert capsys.readouterr().out.strip() == '"alice"'


def test_a_hand_written_file_without_admin_keeps_its_first_user_not_the_first_by_name(
        ) -> None:
    config = parse(BASE + "[users.zoe]\n[users.bob]\n")
    assert config.admin == "zoe"
    accounts.add_user(config, "aaron", "")
    again = parse(tomlkit.dumps(config.document))
    assert again.data["system"]["admin"] == "zoe"
    assert postmaster(again) == ["zoe@example.com"]


def test_the_admin_cannot_be_deleted_while_others_exist(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user_add("alice")
    user_add("bob", "Bob-e2e-passw0rd")
    before = toml.read_text()
    capsys.readouterr()
    assert table.main(["user", "del", "alice"]) == 2
    err = capsys.readouterr().err
    assert "alice is the admin" in err and "config set system.admin bob" in err
    assert toml.read_text() == before
    assert table.main(["config", "set", "system.admin", "bob"]) == 0
    assert table.main(["user", "del", "alice"]) == 0
    config = load(toml)
    assert postmaster(config) == ["bob@example.com"]
    # the last user may go: no one is left to be admin, and the next one added is
    assert table.main(["user", "del", "bob"]) == 0
    assert load(toml).data["system"]["admin"] == ""
    assert user_add("carol", "Carol-e2e-passw0rd") == 0
    assert load(toml).data["system"]["admin"] == "carol"


def test_sme_db_accounts_records_the_admin_and_refuses_deleting_it(toml: Path) -> None:
    sme.run_db("accounts", ["set", "carol", "user"], lambda _: None)
    sme.run_db("accounts", ["set", "dave", "user"], lambda _: None)
    assert load(toml).data["system"]["admin"] == "carol"
    with pytest.raises(ConfigError, match="carol is the admin"):
        sme.run_db("accounts", ["delete", "carol"], lambda _: None)
    with pytest.raises(ConfigError, match="reserved"):
        sme.run_db("accounts", ["set", "postmaster", "pseudonym", "Account", "carol"],
                   lambda _: None)


def test_status_shows_the_admin() -> None:
    from appliance.status import admin_line

    assert admin_line(parse(BASE + "[users.alice]\n")).startswith(
        "alice (system.admin is not set")
    assert admin_line(parse(BASE.replace('domain = "example.com"\n',
                                         'domain = "example.com"\nadmin = "bob"\n')
                            + "[users.alice]\n[users.bob]\n")) == "bob"


# -- password strength ------------------------------------------------------------------

def strength(level: str, length: int = 12) -> Config:
    return parse(BASE.replace('domain = "example.com"\n',
                              f'domain = "example.com"\npassword_strength = "{level}"\n'
                              f"password_min_length = {length}\n") +
                 '[users.alice]\nfull_name = "Alice Example"\n')


@pytest.mark.parametrize("password", ["a", "secret", "Secret", "Password123!",
                                      "alicealice12", "ALICE-E2E-PASSW0RD", "Alice-Alice-2",
                                      "aaaaaaaaaaaaaaaaaaaaaa"])
def test_weak_passwords_are_refused_at_the_default_strong(password: str) -> None:
    assert accounts.check_password(parse(BASE), "alice", password) is not None


@pytest.mark.parametrize("password", [STRONG, "Dora-e2e-passw0rd", "Bob-e2e-passw0rd",
                                      "Erin-e2e-passw0rd", "Load-test-passw0rd",
                                      "Blue-kettle-47-sings", "Tangerine-Harbour-58-Quill"])
def test_strong_passwords_pass(password: str) -> None:
    assert accounts.check_password(parse(BASE), "alice", password) is None


def test_each_sme_level_asks_what_sme_asks() -> None:
    assert "too short" in accounts.check_password(strength("none"), "alice", "x" * 11)
    assert accounts.check_password(strength("none"), "alice", "x" * 12) is None
    assert "upper and lower" in accounts.check_password(strength("normal"), "alice",
                                                        "lowercaseonly")
    assert accounts.check_password(strength("normal"), "alice", "Password1234") is None
    assert accounts.check_password(strength("intermediate"), "alice", "Password1234")
    assert accounts.check_password(strength("intermediate"), "alice",
                                   "Quietly Harbour Tangerine") is None
    assert "digits" in accounts.check_password(strength("strong"), "alice",
                                               "Quietly Harbour Tangerine")
    assert accounts.check_password(strength("strong", 20), "alice", STRONG) is not None


def test_user_add_and_passwd_refuse_a_weak_password_with_exit_1(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert user_add("alice", "secret") == 1
    err = capsys.readouterr().err
    assert err.startswith("appliance: password for alice refused: it is too short")
    assert "alice" not in load(toml).data["users"]
    assert user_add("alice") == 0
    stored = load(toml).data["users"]["alice"]["password"]
    sys.stdin = io.StringIO("Password123!\n")
    try:
        assert table.main(["user", "passwd", "alice", "--password-stdin"]) == 1
    finally:
        sys.stdin = sys.__stdin__
    assert "refused" in capsys.readouterr().err
    assert load(toml).data["users"]["alice"]["password"] == stored


def test_sme_passwordstrength_maps_to_the_schema(toml: Path) -> None:
    sme.run_db("configuration", ["setprop", "passwordstrength", "Users", "normal",
                                 "length", "8"], lambda _: None)
    config = load(toml)
    assert get_value(config, "system.password_strength") == "normal"
    assert get_value(config, "system.password_min_length") == 8
    out: list[str] = []
    sme.run_db("configuration", ["getprop", "passwordstrength", "Users"], out.append)
    assert out == ["normal\n"]
    with pytest.raises(ConfigError, match="must be one of"):
        sme.run_db("configuration", ["setprop", "passwordstrength", "Users", "weak"],
                   lambda _: None)


# -- a deleted user's mailbox -----------------------------------------------------------

def mailbox(name: str, subject: str) -> Path:
    maildir = paths.MAIL_DIR / name / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "new" / "1.eml").write_text(f"Subject: {subject}\n\nhello\n")
    (maildir / "dovecot.index.cache").write_bytes(b"cache")
    (paths.MAIL_DIR / name / ".dovecot.sieve").write_text("keep;\n")
    return maildir


def test_user_del_archives_the_mailbox_and_a_new_user_of_that_name_starts_empty(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user_add("alice")
    user_add("bob", "Bob-e2e-passw0rd")
    mailbox("bob", "for the first bob")
    assert table.main(["user", "del", "bob"]) == 0
    assert not (paths.MAIL_DIR / "bob").exists()
    [archived] = paths.MAIL_ARCHIVE.iterdir()
    assert archived.name.startswith("bob-") and archived.name.endswith("Z")
    assert (archived / "Maildir/new/1.eml").read_text().startswith("Subject: for the first")
    assert (archived / "Maildir/dovecot.index.cache").exists()  # the indexes went too
    assert (archived / ".dovecot.sieve").exists()
    assert str(archived) in capsys.readouterr().out
    assert os.stat(paths.MAIL_ARCHIVE).st_mode & 0o777 == 0o700
    assert user_add("bob", "Bob-second-passw0rd") == 0
    assert not (paths.MAIL_DIR / "bob").exists()  # Dovecot makes a new, empty one


def test_user_del_purge_deletes_the_mailbox(toml: Path) -> None:
    user_add("alice")
    user_add("bob", "Bob-e2e-passw0rd")
    mailbox("bob", "x")
    assert table.main(["user", "del", "bob", "--purge"]) == 0
    assert not (paths.MAIL_DIR / "bob").exists()
    assert not paths.MAIL_ARCHIVE.exists()


def test_a_mailbox_left_by_a_user_deleted_by_hand_is_archived_when_the_name_returns(
        toml: Path) -> None:
    user_add("alice")
    mailbox("bob", "left behind")  # [users.bob] was removed from the file by hand
    assert user_add("bob", "Bob-e2e-passw0rd") == 0
    assert not (paths.MAIL_DIR / "bob").exists()
    assert [p.name.split("-")[0] for p in paths.MAIL_ARCHIVE.iterdir()] == ["bob"]


def test_sme_user_delete_event_archives_the_mailbox(
        toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance import apply

    user_add("alice")
    user_add("bob", "Bob-e2e-passw0rd")
    mailbox("bob", "x")
    sme.run_db("accounts", ["delete", "bob"], lambda _: None)
    assert (paths.MAIL_DIR / "bob").exists()  # Dovecot still serves bob until the event
    monkeypatch.setattr(apply, "apply", lambda config: commit(config, check=False))
    out: list[str] = []
    assert sme.signal_event(["user-delete", "bob"], out.append) == 0
    assert not (paths.MAIL_DIR / "bob").exists()
    assert "bob's mailbox is kept in" in "".join(out)


# -- make backup ------------------------------------------------------------------------

def test_make_backup_writes_a_private_archive_into_a_git_ignored_folder(
        tmp_path: Path) -> None:
    fake = tmp_path / "compose"  # stands in for `docker compose`: prints an archive
    fake.write_text('#!/bin/sh\n[ "$*" = "exec -T appliance appliance backup" ] || exit 9\n'
                    "printf 'archive-bytes'\n")
    fake.chmod(0o755)
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "Makefile").write_text((ROOT_DIR / "Makefile").read_text())
    proc = subprocess.run(["make", "-s", "-o", "engine", "backup", f"COMPOSE={fake}"],
                          cwd=work, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    [archive] = (work / "backups").iterdir()
    assert archive.read_bytes() == b"archive-bytes"
    assert archive.stat().st_mode & 0o777 == 0o600
    ignored = subprocess.run(["git", "check-ignore", "-q", "backups/" + archive.name],
                             cwd=ROOT_DIR, timeout=30)
    assert ignored.returncode == 0, "backups/ must be in .gitignore"
