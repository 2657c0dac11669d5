"""`appliance webmail-password`: what Roundcube's password driver runs through sudo."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from appliance import apply, paths
from appliance.commands import webmail_password
from appliance.config import Config, load
from appliance.smtpd.auth import check_password, hash_password

CURRENT = "Carol-old-passw0rd!"
STRONG = "Tangerine-Harbour-58-Quill"


@pytest.fixture
def committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """carol exists; what would be applied is recorded instead of reloading services."""
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "appliance.toml")
    paths.CONFIG.write_text('[system]\nhostname = "mail"\ndomain = "example.com"\n'
                            f'[users.carol]\npassword = "{hash_password(CURRENT, 4)}"\n')
    monkeypatch.setattr(webmail_password, "FAILURE_DELAY_S", 0)
    seen: list[Config] = []
    monkeypatch.setattr(apply, "commit", lambda config, **kw: seen.append(config))
    return seen


def run(*lines: str) -> tuple[int, str]:
    err = io.StringIO()
    code = webmail_password.main(io.StringIO("".join(f"{x}\n" for x in lines)), err)
    return code, err.getvalue()


def test_a_user_with_the_right_current_password_gets_the_new_one(
    committed: list[Config],
) -> None:
    assert run("carol", CURRENT, STRONG) == (webmail_password.CHANGED, "")
    [config] = committed
    stored = str(config.document["users"]["carol"]["password"])  # as it will be written
    assert check_password(STRONG.encode(), stored)
    assert not check_password(CURRENT.encode(), stored)


@pytest.mark.parametrize("login", ["carol", "Carol", "carol@example.com"])
def test_the_login_is_read_as_dovecot_reads_it(committed: list[Config], login: str) -> None:
    assert run(login, CURRENT, STRONG)[0] == webmail_password.CHANGED


@pytest.mark.parametrize(("login", "current"), [
    ("carol", "not her password"),
    ("carol@elsewhere.test", CURRENT),  # not one of our domains
    ("mallory", CURRENT),
])
def test_without_the_current_password_nothing_changes(
    committed: list[Config], login: str, current: str,
) -> None:
    code, err = run(login, current, STRONG)
    assert code == webmail_password.WRONG_CURRENT
    assert "current password is wrong" in err
    assert committed == []
    assert check_password(CURRENT.encode(), load(paths.CONFIG).data["users"]["carol"]["password"])


def test_a_weak_new_password_is_refused_with_the_reason(committed: list[Config]) -> None:
    code, err = run("carol", CURRENT, "secret")
    assert code == webmail_password.REFUSED
    assert err.startswith("The new password is refused: it is too short")
    assert committed == []


def test_a_request_that_is_not_three_lines_is_an_error(committed: list[Config]) -> None:
    assert run("carol")[0] not in (webmail_password.CHANGED, webmail_password.WRONG_CURRENT,
                                   webmail_password.REFUSED)
    assert committed == []
