"""Spam housekeeping: the Bayes learner, junkmail expiry, Bayes statistics.

- `learn`: every user's LearnAsSpam and LearnAsHam folders (SME's Learn contrib) are fed
  to spamd (TELL, learned into its Bayes database) and each message learned is removed
  from the folder. A message spamd could not learn stays for the next run.
- `expire_junkmail`: junkmail received more than message_retention_days ago is
  expunged (SME MessageRetentionTime; the IMAP internal date, as clients show it).
- `stats`: `sa-learn --dump magic`, run as spamd's user.
The scheduler runs the first two; all three are `appliance spam ...` commands.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from appliance import paths
from appliance.config import Config
from appliance.services.dovecot import JUNKMAIL, LEARN_AS_HAM, LEARN_AS_SPAM
from appliance.services.spamassassin.client import SpamdError, tell

FOLDERS = ((LEARN_AS_SPAM, "spam"), (LEARN_AS_HAM, "ham"))
TIMEOUT_S = 120


def _messages(user: str, folder: str) -> list[Path]:
    # Maildir++: the folder "LearnAsSpam" is the directory .LearnAsSpam
    base = paths.MAIL_DIR / user / "Maildir" / f".{folder}"
    return sorted(p for sub in ("new", "cur") if (base / sub).is_dir()
                  for p in (base / sub).iterdir() if p.is_file())


async def _learn(config: Config) -> tuple[int, int, list[str]]:
    learned = {"spam": 0, "ham": 0}
    errors: list[str] = []
    for user in sorted(config.data["users"]):
        removed = False
        for folder, kind in FOLDERS:
            for path in _messages(user, folder):
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # Dovecot renamed it (new -> cur, flags): the next run has it
                try:
                    await tell(data, kind, paths.SPAMD_SOCKET, TIMEOUT_S)
                except SpamdError as e:
                    errors.append(f"{user}/{folder}/{path.name}: {e}")
                    continue
                path.unlink(missing_ok=True)
                removed = True
                learned[kind] += 1
        if removed:  # the files went behind Dovecot's back: count the quota again
            subprocess.run(["doveadm", "quota", "recalc", "-u", user], check=False,
                           capture_output=True, timeout=300)
    return learned["spam"], learned["ham"], errors


def learn(config: Config) -> int:
    spam = config.data["spamassassin"]
    if not (spam["enabled"] and spam["use_bayes"]):
        print("spam learn: Bayes is off; set spamassassin.use_bayes = true "
              "(SME UseBayes 1) and apply")
        return 1
    n_spam, n_ham, errors = asyncio.run(_learn(config))
    print(f"learned {n_spam} spam and {n_ham} ham messages")
    for e in errors:
        print(f"not learned, kept for the next run: {e}")
    return 1 if errors else 0


def expire_junkmail(config: Config) -> int:
    days = config.data["spamassassin"]["message_retention_days"]
    if not days:
        print("junkmail is kept: spamassassin.message_retention_days is 0")
        return 0
    proc = subprocess.run(["doveadm", "expunge", "-A", "mailbox", JUNKMAIL, "before",
                           f"{days}d"], capture_output=True, text=True, timeout=3600)
    out = (proc.stdout + proc.stderr).strip()
    print(f"junkmail older than {days} days expunged" if proc.returncode == 0 else out)
    return proc.returncode


def stats() -> int:
    proc = subprocess.run(["runuser", "-u", paths.SPAMD_USER, "--", "sa-learn",
                           "--dump", "magic"], capture_output=True, text=True, timeout=120)
    print((proc.stdout + proc.stderr).rstrip())
    return proc.returncode
