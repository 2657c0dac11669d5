"""Mail users in appliance.toml: add, delete, set a password, list.

Edits go through tomlkit so the user's comments and layout survive. Each change is
validated and applied before the file is written: a change that fails leaves both the
file and the running services as they were.
"""

from __future__ import annotations

import tomlkit
from tomlkit.items import Table

from appliance.config import Config, ConfigError
from appliance.config.schema import USERNAME_RE, collection


def _users(config: Config) -> Table:
    doc = config.document
    if "users" not in doc:
        users = tomlkit.table(is_super_table=True)
        doc.add("users", users)
    return doc["users"]  # type: ignore[return-value]


def check_name(name: str) -> None:
    if not USERNAME_RE.match(name):
        spec = collection("users")
        assert spec is not None
        raise ConfigError(f"bad user name; must be {spec.name_allowed}", key=f"users.{name}")


def add_user(config: Config, name: str, password_hash: str, full_name: str = "") -> None:
    check_name(name)
    if name in config.data["users"]:
        raise ConfigError("user already exists", key=f"users.{name}")
    entry = tomlkit.table()
    entry.add("password", password_hash)
    if full_name:
        entry.add("full_name", full_name)
    _users(config).add(name, entry)


def delete_user(config: Config, name: str) -> None:
    if name not in config.data["users"]:
        raise ConfigError("no such user", key=f"users.{name}")
    del _users(config)[name]


def set_password(config: Config, name: str, password_hash: str) -> None:
    if name not in config.data["users"]:
        raise ConfigError("no such user", key=f"users.{name}")
    _users(config)[name]["password"] = password_hash  # type: ignore[index]
