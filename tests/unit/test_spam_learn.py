"""The Bayes learner: only what spamd learned leaves the LearnAsSpam/LearnAsHam folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance import paths
from appliance.config import parse
from appliance.services.spamassassin import learner as spam
from tests.unit.plugins.daemons import FakeSpamd

CONFIG = parse('[system]\nhostname = "mx"\ndomain = "corp.example"\n[users.alice]\n'
               "[spamassassin]\nuse_bayes = true\n")


@pytest.fixture
def maildir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list]:
    monkeypatch.setattr(paths, "MAIL_DIR", tmp_path / "mail")
    monkeypatch.setattr(paths, "SPAMD_SOCKET", tmp_path / "spamd.sock")
    recalcs: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: recalcs.append(argv))
    box = tmp_path / "mail/alice/Maildir"
    for folder, sub, name in ((".LearnAsSpam", "new", "1"), (".LearnAsSpam", "cur", "2:2,S"),
                              (".LearnAsHam", "cur", "3:2,S")):
        (box / folder / sub).mkdir(parents=True, exist_ok=True)
        (box / folder / sub / name).write_bytes(b"Subject: x\r\n\r\nbody " +
                                                name.encode() + b"\r\n")
    return box, recalcs


async def test_learned_messages_are_removed_and_the_quota_recounted(maildir):
    maildir, recalcs = maildir
    daemon = await FakeSpamd(paths.SPAMD_SOCKET).start()
    try:
        assert await spam._learn(CONFIG) == (2, 1, [])
    finally:
        await daemon.stop()
    assert [r.split(b"\r\n")[0] for r in daemon.requests] == [b"TELL SPAMC/1.5"] * 3
    assert not list(maildir.rglob("*:2,S")) and not (maildir / ".LearnAsSpam/new/1").exists()
    assert recalcs == [["doveadm", "quota", "recalc", "-u", "alice"]]


async def test_what_spamd_did_not_learn_stays(maildir):
    maildir, recalcs = maildir
    daemon = await FakeSpamd(paths.SPAMD_SOCKET).start()
    daemon.learns = False  # e.g. Bayes not applied yet: EX_OK without DidSet
    try:
        n_spam, n_ham, errors = await spam._learn(CONFIG)
    finally:
        await daemon.stop()
    assert (n_spam, n_ham) == (0, 0) and len(errors) == 3
    assert "did not learn" in errors[0]
    assert len([p for p in maildir.rglob("*") if p.is_file()]) == 3
    assert recalcs == []
