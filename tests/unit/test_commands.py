"""appliance/commands: the one table of verbs, and the table-driven accounts command."""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import pytest

from appliance import paths
from appliance.commands import accounts as accounts_command
from appliance.commands import table
from appliance.config import load
from appliance.smtpd.auth import check_password

STRONG = "Tangerine-Harbour-58-Quill"
OTHER = "Marigold-Lantern-93-Oboe"


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_table_lists_every_verb_the_docstring_documents_and_no_other() -> None:
    documented = set(re.findall(r"^ {4}appliance ([a-z-]+)", table.__doc__ or "", re.M))
    assert documented == {v.name for v in table.VERBS}
    assert list(subparsers(table.parser())) == [v.name for v in table.VERBS]


@pytest.mark.parametrize("verb", table.VERBS, ids=lambda v: v.name)
def test_every_verb_names_a_function_that_exists(verb: table.Verb) -> None:
    assert callable(verb.function())


def test_the_accounts_verbs_take_exactly_the_actions_of_the_accounts_table() -> None:
    parsers = subparsers(table.parser())
    for verb, coll in accounts_command.COLLECTIONS.items():
        [action] = [a for a in parsers[verb]._actions if a.dest == "action"]
        assert list(action.choices or ()) == coll.choices()
        assert [a for a, change in coll.actions.items() if change is None] == ["list"]


@pytest.fixture
def toml(sandbox: Path) -> Path:
    """A sandboxed appliance.toml (conftest.sandbox)."""
    sandbox.write_text('[system]\nhostname = "mail"\ndomain = "example.com"\n')
    return sandbox


def appliance(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> str:
    """Run `appliance ARGV...`; exit 0 expected; returns what it printed."""
    sys.stdin = io.StringIO(stdin)
    try:
        assert table.main(list(argv)) == 0, capsys.readouterr().err
    finally:
        sys.stdin = sys.__stdin__
    return capsys.readouterr().out


def test_every_accounts_action_reaches_the_model_and_is_committed(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each verb and action of COLLECTIONS, through the command line: what it changes is
    in appliance.toml afterwards, and `list` shows it."""
    tried: set[tuple[str, str]] = set()

    def run(*argv: str, stdin: str = "") -> str:
        tried.add((argv[0], argv[1]))
        return appliance(capsys, *argv, stdin=stdin)

    def data() -> dict:
        return load(toml).data

    assert run("user", "add", "alice", "--full-name", "Alice",
               "--password-stdin", stdin=STRONG + "\n") == "user alice: add done\n"
    assert check_password(STRONG.encode(), data()["users"]["alice"]["password"])
    run("user", "add", "bob", "--password-stdin", stdin=STRONG + "\n")
    run("user", "passwd", "bob", "--password-stdin", stdin=OTHER + "\n")
    assert check_password(OTHER.encode(), data()["users"]["bob"]["password"])
    assert run("user", "list") == "alice\tAlice\nbob\t\n"

    run("group", "add", "sales", "alice")
    run("group", "member-add", "sales", "bob")
    assert data()["groups"]["sales"]["members"] == ["alice", "bob"]
    run("group", "member-del", "sales", "alice")
    assert data()["groups"]["sales"]["members"] == ["bob"]
    assert run("group", "list") == "sales\tbob\n"

    run("pseudonym", "add", "info", "sales")
    assert data()["pseudonyms"]["info"]["account"] == "sales"
    assert run("pseudonym", "list") == "info\t-> sales\n"

    run("domain", "add", "example.org", "--mail-server", "192.0.2.7")
    run("domain", "add", "example.net")
    assert data()["domains"]["example.org"]["mail_server"] == "192.0.2.7"
    assert run("domain", "list") == ("example.com\t(primary)\nexample.net\tmailboxes here\n"
                                     "example.org\t-> 192.0.2.7\n")

    for verb, name in (("pseudonym", "info"), ("group", "sales"), ("domain", "example.org")):
        assert run(verb, "del", name) == f"{verb} {name}: del done\n"
        assert name not in data()[accounts_command.COLLECTIONS[verb].table]
    (paths.MAIL_DIR / "bob").mkdir(parents=True)
    assert run("user", "del", "bob", "--purge") == (
        "user bob: mailbox deleted\nuser bob: del done\n")
    assert "bob" not in data()["users"] and not (paths.MAIL_DIR / "bob").exists()

    every = {(verb, action) for verb, coll in accounts_command.COLLECTIONS.items()
             for action in coll.actions}
    assert tried == every


def test_an_accounts_action_without_a_name_or_with_a_weak_password_changes_nothing(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = toml.read_text()
    assert table.main(["group", "add"]) == 2
    assert "`appliance group add` needs a group name" in capsys.readouterr().err
    sys.stdin = io.StringIO("short\n")
    try:
        assert table.main(["user", "add", "carol", "--password-stdin"]) == 1
    finally:
        sys.stdin = sys.__stdin__
    assert capsys.readouterr().err.startswith("appliance: password for carol refused: ")
    assert table.main(["group", "member-add", "nobody", "carol"]) == 2
    assert "no such group" in capsys.readouterr().err
    assert toml.read_text() == before


def test_an_app_password_is_printed_once_last_listed_without_its_hash_and_removed(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`user app-password add|list|remove`: the password is the last line printed, only
    its hash is stored, list shows name and time, remove revokes it; the user's own new
    password leaves it, deleting the user deletes it."""
    appliance(capsys, "user", "add", "alice", "--password-stdin", stdin=STRONG + "\n")
    out = appliance(capsys, "user", "app-password", "add", "alice", "phone")
    password = out.splitlines()[-1]
    assert re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}", password)
    assert password not in toml.read_text()
    [entry] = load(toml).data["users"]["alice"]["app_passwords"]
    name, created, stored = entry.split(" ")
    assert name == "phone" and check_password(password.encode(), stored)
    assert not check_password(STRONG.encode(), stored)

    listed = appliance(capsys, "user", "app-password", "list", "alice")
    assert listed == f"phone\t{created}\n" and "BLF" not in listed

    appliance(capsys, "user", "passwd", "alice", "--password-stdin", stdin=OTHER + "\n")
    assert load(toml).data["users"]["alice"]["app_passwords"] == [entry]

    assert appliance(capsys, "user", "app-password", "remove", "alice", "phone") == (
        "user alice: app password phone removed; it no longer logs in\n")
    assert load(toml).data["users"]["alice"]["app_passwords"] == []
    assert appliance(capsys, "user", "app-password", "list", "alice") == ""

    appliance(capsys, "user", "app-password", "add", "alice", "laptop")
    appliance(capsys, "user", "add", "bob", "--password-stdin", stdin=STRONG + "\n")
    appliance(capsys, "config", "set", "system.admin", "bob")
    appliance(capsys, "user", "del", "alice")
    assert "app_passwords" not in toml.read_text()


@pytest.mark.parametrize(("argv", "error"), [
    (["add", "alice", "phone"], "alice already has an app password named phone"),
    (["add", "alice", "my phone"], "bad app password name 'my phone'"),
    (["add", "alice", "x" * 33], "bad app password name"),
    (["add", "nobody", "phone"], "users.nobody: no such user"),
    (["remove", "alice", "tablet"], "alice has no app password named tablet"),
    (["add", "alice"], "`appliance user app-password add USER NAME`"),
    (["show", "alice"], "`appliance user app-password add USER NAME`"),
])
def test_a_wrong_app_password_command_is_refused_and_changes_nothing(
        toml: Path, capsys: pytest.CaptureFixture[str], argv: list[str], error: str) -> None:
    appliance(capsys, "user", "add", "alice", "--password-stdin", stdin=STRONG + "\n")
    appliance(capsys, "user", "app-password", "add", "alice", "phone")
    before = toml.read_text()
    assert table.main(["user", "app-password", *argv]) == 2
    assert error in capsys.readouterr().err
    assert toml.read_text() == before


def test_a_user_has_at_most_ten_app_passwords(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.config.app_passwords import MAX_PER_USER

    appliance(capsys, "user", "add", "alice", "--password-stdin", stdin=STRONG + "\n")
    for n in range(MAX_PER_USER):
        appliance(capsys, "user", "app-password", "add", "alice", f"device{n}")
    assert table.main(["user", "app-password", "add", "alice", "one-more"]) == 2
    assert (f"alice already has {MAX_PER_USER} app passwords, the most a user may have"
            in capsys.readouterr().err)
    assert len(load(toml).data["users"]["alice"]["app_passwords"]) == MAX_PER_USER


def test_other_actions_refuse_extra_arguments(
        toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert table.main(["user", "list", "alice", "junk"]) == 2
    assert "too many arguments" in capsys.readouterr().err
