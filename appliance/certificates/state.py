"""What the last ACME order did, on the volume (tls/acme/state.json): a failure's error
for `appliance status`, and when the scheduler may try again (backoff)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from appliance.config import write_atomic

STATE_FILE = "state.json"
# After the Nth failure in a row the next automatic try waits FIRST_RETRY_S * 2**(N-1),
# at most MAX_RETRY_S: a CA that refuses is not asked every tick (Let's Encrypt limits
# failed validations to a few an hour). `appliance cert renew` tries at once anyway.
FIRST_RETRY_S = 900
MAX_RETRY_S = 86400


@dataclass
class State:
    failures: int = 0  # in a row; 0 after a success
    last_error: str = ""  # the CA's (or the network's) words, "" after a success
    last_error_at: float = 0.0
    next_try: float = 0.0  # the scheduler's --if-due waits until then
    last_success: float = 0.0
    last_order_s: float = 0.0  # how long the last successful order took
    # the certificate the last order installed (sha256 of its PEM): another one in
    # tls/cert.pem (self-signed, or dropped in) is replaced while tls.acme is on
    issued_fingerprint: str = ""
    names: list[str] = field(default_factory=list)


def when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def backoff_s(failures: int) -> int:
    if failures <= 0:
        return 0
    return min(FIRST_RETRY_S * 2 ** (failures - 1), MAX_RETRY_S)


def failed(st: State, error: str, now: float) -> State:
    st.failures += 1
    st.last_error, st.last_error_at = error, now
    st.next_try = now + backoff_s(st.failures)
    return st


def succeeded(st: State, fingerprint: str, names: list[str], now: float,
              took_s: float) -> State:
    st.failures, st.last_error, st.last_error_at, st.next_try = 0, "", 0.0, 0.0
    st.last_success, st.last_order_s = now, took_s
    st.issued_fingerprint, st.names = fingerprint, list(names)
    return st


def load(path: Path) -> State:
    """The state, or a fresh one when the file is missing or unreadable (a torn or
    hand-edited file costs at most one early try)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return State()
    if not isinstance(data, dict):
        return State()
    st = State()
    for f in fields(State):
        value, default = data.get(f.name), getattr(st, f.name)
        if isinstance(default, float) and isinstance(value, int) and \
                not isinstance(value, bool):
            value = float(value)
        if type(value) is type(default):
            setattr(st, f.name, value)
    return st


def save(path: Path, st: State) -> None:
    write_atomic(path, json.dumps(asdict(st), indent=1) + "\n", mode=0o600)
