"""What several verbs share: appliance.toml from its one path, a commit that prints apply's
warnings, and a new password read from the terminal or standard input."""

from __future__ import annotations

import getpass
import sys

from appliance import paths
from appliance.config import Config, ConfigError, load


def load_config() -> Config:
    return load(paths.CONFIG)


def commit(config: Config, *, dry_run: bool = False) -> None:
    """Save, render, check and apply `config` (apply.commit); --dry-run prints the diff."""
    from appliance.apply import commit as apply_commit

    plan = apply_commit(config, dry_run=dry_run)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if dry_run:
        sys.stdout.write("".join(plan.diffs))


def read_password(from_stdin: bool) -> str:
    """The first line of standard input, or asked twice on the terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for a password: use --password-stdin")
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError("the two passwords differ")
    if not password:
        raise ConfigError("empty password")
    return password
