"""Password hashes shared by Dovecot and SMTP AUTH."""

from __future__ import annotations

import pytest

from appliance.smtpd.auth import PasswordChecker, check_password, hash_password


def test_hash_is_dovecot_blf_crypt_and_verifies() -> None:
    h = hash_password("correct horse", rounds=4)
    assert h.startswith("{BLF-CRYPT}$2b$04$")
    assert check_password(b"correct horse", h)
    assert not check_password(b"wrong", h)


def test_empty_and_overlong_passwords_are_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("")
    with pytest.raises(ValueError):
        hash_password("x" * 73)


async def test_login_with_or_without_a_local_domain() -> None:
    checker = PasswordChecker({"alice": hash_password("pw", rounds=4)}, ["corp.example"])
    assert await checker.verify(b"alice", b"pw") == "alice"
    assert await checker.verify(b"Alice@corp.example", b"pw") == "alice"
    assert await checker.verify(b"alice@elsewhere.example", b"pw") is None
    assert await checker.verify(b"alice", b"nope") is None
    assert await checker.verify(b"mallory", b"pw") is None


async def test_user_without_password_cannot_log_in() -> None:
    checker = PasswordChecker({"bob": ""}, ["corp.example"])
    assert await checker.verify(b"bob", b"") is None
