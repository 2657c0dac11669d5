"""The console's forms mask exactly the settings the schema declares secret (Key.secret),
not every key with "password" in its name."""

from __future__ import annotations

from appliance.config.schema import COLLECTIONS, SECTIONS
from console.screens.form import is_secret


def test_a_form_field_is_masked_when_its_key_is_declared_secret() -> None:
    keys = [(f"{s.path}.{k.name}", k) for s in SECTIONS for k in s.keys]
    keys += [(f"{c.path}.alice.{k.name}", k) for c in COLLECTIONS for k in c.keys]
    assert {d for d, k in keys if is_secret(d)} == {d for d, k in keys if k.secret}
    assert is_secret("delivery.smarthost_password")
    assert not is_secret("system.password_strength")  # a setting about passwords
    assert not is_secret("no.such.password")
