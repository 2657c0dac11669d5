"""`appliance queue`: Postfix's queue, the way SME admins used qmHandle.

list shows one line per message (id, queue, age, size, sender, recipients and, for
deferred mail, why); flush retries now; delete, hold and release act on ids or ALL.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass

from appliance.config import ConfigError


@dataclass
class Message:
    id: str
    queue: str  # active, deferred, hold, incoming, maildrop
    arrival: int
    size: int
    sender: str
    recipients: list[tuple[str, str]]  # (address, delay reason)


def messages() -> list[Message]:
    proc = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(f"postqueue failed: {proc.stderr.strip()}")
    out = []
    for line in proc.stdout.splitlines():
        m = json.loads(line)
        out.append(Message(
            m["queue_id"], m["queue_name"], int(m["arrival_time"]), int(m["message_size"]),
            m["sender"] or "<>",
            [(r["address"], r.get("delay_reason", "")) for r in m["recipients"]]))
    return out


def counts(msgs: list[Message] | None = None) -> dict[str, int]:
    out = {"active": 0, "deferred": 0, "hold": 0, "incoming": 0}
    for m in msgs if msgs is not None else messages():
        out[m.queue] = out.get(m.queue, 0) + 1
    return out


def format_list(msgs: list[Message], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = []
    for m in sorted(msgs, key=lambda m: m.arrival):
        age = int(now - m.arrival)
        lines.append(f"{m.id}  {m.queue:<8} {age // 3600:>3}h{age % 3600 // 60:02d}m "
                     f"{m.size:>9}  {m.sender}")
        for address, reason in m.recipients:
            lines.append(f"    -> {address}" + (f"  ({reason})" if reason else ""))
    c = counts(msgs)
    lines.append(f"{len(msgs)} messages: {c['active']} active, {c['deferred']} deferred, "
                 f"{c['hold']} on hold")
    return "\n".join(lines) + "\n"


POSTSUPER_FLAG = {"delete": "-d", "hold": "-h", "release": "-H", "requeue": "-r"}


def act(action: str, ids: list[str]) -> str:
    if action == "flush":
        subprocess.run(["postqueue", "-f"], check=True, timeout=60)
        return "flushed: Postfix is retrying every queued message now\n"
    if not ids:
        raise ConfigError(f"`queue {action}` needs message ids (see `appliance queue list`) "
                          "or ALL")
    known = {m.id for m in messages()}
    for qid in ids:
        if qid != "ALL" and qid not in known:
            raise ConfigError(f"no message {qid} in the queue")
    argv = ["postsuper"]
    for qid in ids:
        argv += [POSTSUPER_FLAG[action], qid]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(f"postsuper failed: {proc.stderr.strip()}")
    return (proc.stderr.strip() or f"{action}: done") + "\n"
