"""App passwords: the schema's rules, what Dovecot, the SMTP daemons and the webmail get
from them, and SMTP AUTH with one (appliance.config.app_passwords)."""

from __future__ import annotations

import json

import pytest

from appliance.config import ConfigError, parse
from appliance.config import app_passwords as ap
from appliance.services import dovecot, smtpd, webmail
from appliance.smtpd import auth
from appliance.smtpd.auth import Login, PasswordChecker, hash_password
from appliance.smtpd.settings import from_dict

BASE = '[system]\nhostname = "mail"\ndomain = "example.com"\n'
CREATED = "2025-01-31T12:00:00Z"


def entry(name: str, password: str) -> str:
    return f"{name} {CREATED} {hash_password(password, 4)}"


def users(**apps: list[str]) -> str:
    text = BASE
    for user, items in apps.items():
        text += (f"[users.{user}]\npassword = {json.dumps(hash_password('own-' + user, 4))}\n"
                 f"app_passwords = {json.dumps(items)}\n")
    return text


def test_a_generated_app_password_is_four_groups_of_four_letters_and_digits() -> None:
    made = {ap.generate() for _ in range(50)}
    assert len(made) == 50
    for p in made:
        groups = p.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set(ap.ALPHABET)
    assert len(ap.ALPHABET) ** 16 > 2**80  # about 82 bits


WELL_FORMED = "{BLF-CRYPT}$2b$05$" + "a" * 53  # a bcrypt hash's shape


@pytest.mark.parametrize(("items", "why"), [
    (["phone"], 'not "NAME CREATED HASH"'),
    ([f"my/phone {CREATED} {{BLF-CRYPT}}$2b$04$x"], "app password name 'my/phone'"),
    (["phone yesterday {BLF-CRYPT}$2b$04$x"], "is not a UTC time"),
    ([f"phone {CREATED} {{PLAIN}}hunter2"], "not a {BLF-CRYPT} hash"),
    ([f"phone {CREATED} {{BLF-CRYPT}}$2b$04$x:::nologin"], "not a {BLF-CRYPT} hash"),
    ([f"phone {CREATED} {WELL_FORMED}", f"phone {CREATED} {WELL_FORMED}"],
     "app password phone: named twice"),
    ([f"d{n} {CREATED} {WELL_FORMED}" for n in range(11)],
     "11 app passwords; at most 10 per user"),
])
def test_the_schema_refuses_a_bad_app_password_list_without_showing_it(
        items: list[str], why: str) -> None:
    text = BASE + f'[users.alice]\napp_passwords = {json.dumps(items)}\n'
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert err.value.key == "users.alice.app_passwords"
    assert why in str(err.value)
    assert "hunter2" not in str(err.value) and "$2b$" not in str(err.value)


def test_dovecot_tries_one_passdb_per_slot_after_the_users_own_password() -> None:
    config = parse(users(alice=[entry("phone", "a1"), entry("laptop", "a2")],
                         bob=[entry("tablet", "b1")]))
    conf = dovecot.dovecot_conf(config)
    own = conf.index(f"passwd_file_path = {dovecot.USERS_FILE}")
    first = conf.index("passdb app_password_1 {")
    second = conf.index("passdb app_password_2 {")
    assert own < first < second and "app_password_3" not in conf
    assert "passwd_file_path = /etc/dovecot/appliance/app-passwords-2\n" in conf
    assert ("login_log_format_elements = user=<%{user}> method=%{mechanism} "
            "rip=%{remote_ip} lip=%{local_ip} mpid=%{mail_pid} %{secured} "
            "session=<%{session}> app-password=%{passdb:app_password}\n") in conf

    files = {f.path: f for f in dovecot.render(config)}
    slot1, slot2 = (files[dovecot.APP_PASSWORDS_FILE.format(slot=n)] for n in (1, 2))
    alice = config.data["users"]["alice"]["app_passwords"]
    assert slot1.text.splitlines()[0] == (
        f"alice:{alice[0].split(' ')[2]}::::::app_password=phone")
    assert slot1.text.splitlines()[1].endswith("::::::app_password=tablet")
    assert slot2.text == f"alice:{alice[1].split(' ')[2]}::::::app_password=laptop\n"
    # every slot is rendered, so a revoked one leaves nothing; hashes: dovecot only
    slots = [f for p, f in files.items() if "app-passwords-" in p]
    assert len(slots) == ap.MAX_PER_USER
    assert all(f.secret and f.mode == 0o640 and f.group == "dovecot" for f in slots)
    assert files[dovecot.APP_PASSWORDS_FILE.format(slot=3)].text == ""


def test_without_app_passwords_dovecot_has_its_one_passdb() -> None:
    conf = dovecot.dovecot_conf(parse(BASE))
    assert conf.count("passdb ") == 1


def test_a_user_without_a_password_logs_in_with_no_app_password() -> None:
    text = BASE + f'[users.carol]\napp_passwords = {json.dumps([entry("phone", "c1")])}\n'
    config = parse(text)
    assert "passdb app_password_1" not in dovecot.dovecot_conf(config)
    assert dovecot.app_passwords_file(config, 1) == ""
    assert smtpd.settings(config).app_passwords == {}


def test_the_smtp_daemons_settings_carry_the_app_password_hashes() -> None:
    config = parse(users(alice=[entry("phone", "a1")]))
    s = smtpd.settings(config)
    stored = config.data["users"]["alice"]["app_passwords"][0].split(" ")[2]
    assert s.app_passwords == {"alice": {"phone": stored}}
    assert from_dict(s.to_dict()).app_passwords == s.app_passwords


def test_the_webmail_gets_the_hashes_it_refuses_readable_by_php_only() -> None:
    config = parse(users(alice=[entry("phone", "a1")], bob=[]))
    [f] = [f for f in webmail.render(config) if f.path == webmail.APP_PASSWORDS]
    assert f.secret and f.mode == 0o640 and f.group == "www-data"
    data = json.loads(f.text)
    assert list(data) == ["alice"] and data["alice"]["phone"].startswith("$2b$04$")
    import bcrypt
    assert bcrypt.checkpw(b"a1", data["alice"]["phone"].encode())


def checker(**apps: dict[str, str]) -> PasswordChecker:
    return PasswordChecker({"alice": hash_password("own", 4), "bob": hash_password("b", 4),
                            "carol": ""}, ["corp.example"], app_passwords=apps)


async def test_smtp_auth_takes_an_app_password_as_the_real_user_and_names_it() -> None:
    c = checker(alice={"phone": hash_password("app-1", 4), "laptop": hash_password("app-2", 4)},
                carol={"phone": hash_password("app-3", 4)})
    assert await c.check(b"alice", b"own") == Login("alice")
    assert await c.check(b"Alice@corp.example", b"app-2") == Login("alice", "laptop")
    assert await c.verify(b"alice", b"app-1") == "alice"
    assert await c.check(b"bob", b"app-1") is None  # alice's, not bob's
    assert await c.check(b"alice", b"nope") is None
    assert await c.check(b"carol", b"app-3") is None  # no password: no login at all
    assert await c.check(b"mallory", b"app-1") is None


async def test_every_smtp_login_compares_the_same_hashes_known_user_or_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown users cost the same time: the own hash, then one per slot in use."""
    c = checker(alice={"phone": hash_password("app-1", 4), "laptop": hash_password("app-2", 4)})
    real, calls = auth.check_password, []

    def counted(password: bytes, stored: str) -> bool:
        calls.append(stored[len(auth.SCHEME):][:7] if stored else "dummy")
        return real(password, stored)

    monkeypatch.setattr(auth, "check_password", counted)
    seen = []
    for login, password in ((b"alice", b"own"), (b"alice", b"app-1"), (b"bob", b"x"),
                            (b"mallory", b"x")):
        calls.clear()
        await c.check(login, password)
        seen.append(len(calls))
    assert seen == [3, 3, 3, 3]
