"""appliance.smtpd.sasl: decoding the client's AUTH answers and refusing the bad ones."""

from __future__ import annotations

import base64

import pytest

from appliance.smtpd import replies, sasl


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_decode_accepts_strict_base64_only() -> None:
    assert sasl.decode(b64(b"\0alice\0secret")) == b"\0alice\0secret"
    assert sasl.decode("") == b""  # an empty initial response ("=") decodes to nothing
    for bad in ("not*base64", "YWxpY2U", "YWxp Y2U=", "é"):
        with pytest.raises(sasl.SaslError) as caught:
            sasl.decode(bad)
        assert caught.value.reply == replies.AUTH_BAD_BASE64


def test_plain_answer_splits_into_login_and_password() -> None:
    assert sasl.split_plain(b"\0alice\0secret") == (b"alice", b"secret")
    # the authorization identity may repeat the login, in any case (RFC 4616)
    assert sasl.split_plain(b"Alice\0alice\0secret") == (b"alice", b"secret")
    assert sasl.split_plain(b"\0alice\0") == (b"alice", b"")  # checked later, and refused


@pytest.mark.parametrize("blob", [b"no separators", b"\0only-one", b"a\0b\0c\0d"])
def test_plain_answer_without_exactly_three_fields_is_a_syntax_error(blob: bytes) -> None:
    with pytest.raises(sasl.SaslError) as caught:
        sasl.split_plain(blob)
    assert caught.value.reply == replies.AUTH_BAD_PLAIN


def test_acting_as_someone_else_is_refused() -> None:
    with pytest.raises(sasl.SaslError) as caught:
        sasl.split_plain(b"bob\0alice\0secret")
    assert caught.value.reply == replies.AUTHZID_REFUSED


def test_handled_results_are_fresh_failures() -> None:
    first, second = sasl.handled(), sasl.handled()
    assert first is not second
    assert (first.success, first.handled) == (False, True)
