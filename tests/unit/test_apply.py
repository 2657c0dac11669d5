"""`appliance apply` outside a container: writes, diffs, refuses bad settings untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomlkit

from appliance import accounts, paths
from appliance.apply import apply, plan
from appliance.config import ConfigError, parse
from appliance.config.default import default_toml
from appliance.services.dovecot import sieve_stale


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    return tmp_path


def test_apply_writes_every_file_then_nothing_changes(root: Path) -> None:
    config = parse(default_toml())
    first = apply(config, check=False)
    assert set(first.services) == {"unbound", "network", "postfix", "dovecot", "smtpd",
                                   "supervisord", "fetchmail",
                                   "spamassassin", "clamav", "webmail", "security",
                                   "autoconfig", "mta-sts-resolver"}
    assert (root / "etc/postfix/main.cf").exists()
    assert (root / "etc/dovecot/appliance/users").stat().st_mode & 0o777 == 0o640
    again = apply(config, check=False)
    assert again.services == []


def test_only_the_services_whose_files_change_are_touched(root: Path) -> None:
    apply(parse(default_toml()), check=False)
    changed = plan(parse(default_toml() + "\n[users.carol]\n"), root)
    assert set(changed.services) == {"postfix", "dovecot", "smtpd"}  # not supervisord


def test_dry_run_shows_a_diff_and_writes_nothing(root: Path) -> None:
    apply(parse(default_toml()), check=False)
    before = (root / "etc/postfix/main.cf").read_text()
    p = apply(parse(default_toml().replace("lifetime = 604800", "lifetime = 1000")),
              dry_run=True)
    assert "+maximal_queue_lifetime = 1000s" in "".join(p.diffs)
    assert (root / "etc/postfix/main.cf").read_text() == before


def test_a_plugin_that_refuses_its_settings_stops_apply_and_nothing_is_written(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.smtpd import peers

    apply(parse(default_toml()), check=False)
    before = (root / "etc/appliance/smtpd.json").read_text()
    monkeypatch.setattr(peers, "TABLE", peers.TABLE + (("no_such_plugin", peers.ALL),))
    bad = parse(default_toml().replace("max_recipients = 100", "max_recipients = 50"))
    with pytest.raises(ConfigError, match="no_such_plugin"):
        apply(bad)  # the smtpd check needs no container
    assert (root / "etc/appliance/smtpd.json").read_text() == before


def test_user_edits_keep_comments_and_layout() -> None:
    text = default_toml() + "\n# the front desk\n[users.office]\npassword = \"\"\n"
    config = parse(text)
    accounts.add_user(config, "alice", "{BLF-CRYPT}$2b$04$" + "x" * 53, "Alice")
    out = tomlkit.dumps(config.document)
    assert "# the front desk" in out
    assert out.startswith(default_toml()[:200])
    assert parse(out).data["users"]["alice"]["full_name"] == "Alice"


def test_duplicate_and_bad_user_names_are_refused() -> None:
    config = parse("[users.alice]\n")
    with pytest.raises(ConfigError, match="already exists"):
        accounts.add_user(config, "alice", "")
    with pytest.raises(ConfigError, match="bad user name"):
        accounts.add_user(config, "Root!", "")
    with pytest.raises(ConfigError, match="no such user"):
        accounts.delete_user(config, "bob")


def test_commit_refuses_a_file_changed_since_it_was_read(root: Path, monkeypatch) -> None:
    from appliance.apply import commit
    from appliance.config import load
    from appliance.config.edit import set_value

    monkeypatch.setattr(paths, "CONFIG", root / "appliance.toml")
    paths.CONFIG.write_text(default_toml())
    mine, theirs = load(paths.CONFIG), load(paths.CONFIG)
    set_value(theirs, "queue.lifetime", ["1000"])
    commit(theirs, check=False)
    set_value(mine, "smtpd.timeout", ["60"])
    with pytest.raises(ConfigError, match="changed by someone else since it was read"
                       r".*\(differs at (\[queue\], )?lifetime\)"):
        commit(mine, check=False)
    data = load(paths.CONFIG).data
    assert data["queue"]["lifetime"] == 1000 and data["smtpd"]["timeout"] == 120


def test_a_sieve_script_is_recompiled_when_its_binary_is_missing_or_older(
        tmp_path: Path) -> None:
    script = tmp_path / "duplicates.sieve"
    assert not sieve_stale(script, changed=True)  # nothing rendered there
    script.write_text("keep;\n")
    assert sieve_stale(script, changed=False)  # never compiled, or the binary was deleted
    binary = script.with_suffix(".svbin")
    binary.write_bytes(b"")
    os.utime(script, (1000, 1000))
    os.utime(binary, (2000, 2000))
    assert not sieve_stale(script, changed=False)
    assert sieve_stale(script, changed=True)  # it or dovecot.conf changed
    os.utime(script, (3000, 3000))
    assert sieve_stale(script, changed=False)  # a failed compile left an older binary


def test_daemons_not_serving_the_new_certificate_are_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apply restarts an SMTP daemon whose SIGHUP did not load the new pair."""
    from appliance.services.smtpd import not_serving as _not_serving

    monkeypatch.setattr(paths, "SMTPD_TLS", tmp_path)
    (tmp_path / "serving-smtp").write_text("new\n")
    (tmp_path / "serving-smtps").write_text("old\n")  # its reload kept the old pair
    late = _not_serving(["smtp", "smtps", "submission"], "new", wait=0.2)
    assert late == ["smtps", "submission"]  # submission never said


def test_the_checked_pair_is_installed_for_the_daemons_as_checked(tmp_path: Path) -> None:
    import grp

    from appliance.tls import check_pair, ensure_self_signed, install_for_smtpd, installed_for_smtpd

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, "mail.example.com", "example.com")
    pair = check_pair(cert, key)
    copy = tmp_path / "smtpd-tls"
    assert not installed_for_smtpd(pair, copy)
    group = grp.getgrgid(os.getgid()).gr_name  # qpsmtpd in the container; ours here
    install_for_smtpd(pair, copy, group)
    assert installed_for_smtpd(pair, copy)
    assert (copy / "key.pem").stat().st_gid == copy.stat().st_gid == os.getgid()
    assert (copy / "key.pem").read_bytes() == key.read_bytes()
    assert (copy / "key.pem").stat().st_mode & 0o777 == 0o640
    assert copy.stat().st_mode & 0o777 == 0o750
    assert key.stat().st_mode & 0o777 == 0o600  # the admin's file is left as it was
