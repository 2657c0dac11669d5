"""A broken appliance.toml at boot: keep mail running, report it, recover on `apply`.

Every successful apply (and so every boot) keeps the configuration it applied beside the
toml as `appliance.toml.last-good`. A boot that cannot start on appliance.toml (not TOML,
a bad value, a file a service's own checker refuses) does not stop the container, which
would crash-loop and lock `docker compose exec` out:

- with a last good copy it renders and runs that one: mail goes on as before the edit;
- without one (a first boot, or a copy this version no longer accepts) supervisord starts
  with no program, so `docker compose exec` works and only the admin tools are up.

The boot records which of the two it did in BOOT_STATE; `appliance status` and the
healthcheck report the problem (file, key, reason) until an `appliance apply` succeeds,
which clears it and, after a boot that waited, starts every service.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import tomlkit

from appliance import paths
from appliance.config import Config, ConfigError, load, write_atomic

log = logging.getLogger("appliance.recovery")

LAST_GOOD = "last-good"  # the boot runs appliance.toml.last-good
WAITING = "waiting"  # the boot found nothing to run: admin tools only

EDIT_HINT = ("fix it (docker compose exec appliance vi /var/lib/appliance/appliance.toml), "
             "then run `appliance apply`")

T = TypeVar("T")


def last_good_path() -> Path:
    return paths.CONFIG.with_name(paths.CONFIG.name + ".last-good")


def state_path() -> Path:
    # /run is the container's own: a recreated container starts without a state
    return paths.ROOT / "run/appliance/boot-state.json"


@dataclass(frozen=True)
class BootState:
    """What a boot did instead of starting on appliance.toml, and why."""

    mode: str  # LAST_GOOD or WAITING
    error: str  # why appliance.toml was not used: file, line, key, reason
    fallback_error: str = ""  # WAITING: why the last good copy was not used either


def remember(config: Config) -> None:
    """Keep CONFIG, just applied, as the last good configuration. Only beside a real
    appliance.toml: what was applied without one (tests) is nobody's configuration."""
    if paths.CONFIG.exists():
        write_atomic(last_good_path(), tomlkit.dumps(config.document), mode=0o600)


def read_state() -> BootState | None:
    try:
        return BootState(**json.loads(state_path().read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:  # unreadable: say so rather than hide it
        return BootState(WAITING, f"{state_path()}: unreadable ({e})")


def write_state(state: BootState | None) -> None:
    if state is None:
        state_path().unlink(missing_ok=True)
    else:
        # root only, as appliance.toml: the error quotes values of the file
        write_atomic(state_path(), json.dumps(asdict(state)) + "\n", mode=0o600)


def waiting() -> bool:
    """Whether the boot found no configuration to run (the mail services are not up)."""
    state = read_state()
    return state is not None and state.mode == WAITING


def applied(config: Config) -> None:
    """An apply succeeded: CONFIG is the good one now, and whatever the boot fell back
    to is over."""
    remember(config)
    write_state(None)


def boot(start: Callable[[Config], T]) -> tuple[T | None, BootState | None]:
    """Load appliance.toml and START on it; if either fails, START on the last good copy
    instead; if that fails too, start nothing. Returns what START returned (None when
    nothing started) and the state to record (None: all is well).

    Any Exception counts, not only a ConfigError: a renderer tripping on an unusual but
    valid file (a KeyError, an OSError) must not crash-loop the container either."""
    try:
        return start(load(paths.CONFIG)), None
    except Exception as e:  # noqa: BLE001 - see above; KeyboardInterrupt etc. pass
        error = _failure(e, paths.CONFIG)
    try:
        return start(load(last_good_path())), BootState(LAST_GOOD, error)
    except Exception as e:  # noqa: BLE001
        return None, BootState(WAITING, error, _failure(e, last_good_path()))


def _failure(e: Exception, path: Path) -> str:
    """What to report about a boot on PATH that raised E; anything but a ConfigError is
    a bug of ours, logged with its traceback."""
    if isinstance(e, ConfigError):
        return str(e)
    log.error("starting on %s failed", path, exc_info=e)
    return f"{path}: cannot start on it ({type(e).__name__}: {e}); see docker compose logs"


def boot_banner(state: BootState) -> list[str]:
    """The lines a boot logs, loudly, when it could not start on appliance.toml."""
    lines = [f"appliance.toml is broken: {state.error}"]
    if state.mode == LAST_GOOD:
        lines.append(f"running the last good configuration instead ({last_good_path()}, "
                     f"applied {_saved_at()})")
    else:
        lines.append("no good configuration to fall back on"
                     + (f" ({state.fallback_error})" if state.fallback_error else "")
                     + ": no mail service runs, only the admin tools")
    lines.append(EDIT_HINT)
    return lines


def describe(error: ConfigError | None, state: BootState | None) -> str | None:
    """The problem to report for appliance.toml as it is now (ERROR: why it does not load;
    None: it does) and what the boot did; None when there is none."""
    if error is not None:
        if state is None:
            return (f"{error}; the services keep the configuration last applied; "
                    f"{EDIT_HINT}")
        if state.mode == LAST_GOOD:
            return (f"{error}; the boot fell back on the last good configuration "
                    f"(applied {_saved_at()}); {EDIT_HINT}")
        return f"{error}; no mail service runs until it is fixed; {EDIT_HINT}"
    if state is None:
        return None
    running = ("the services run the last good configuration" if state.mode == LAST_GOOD
               else "no mail service runs")
    return (f"{paths.CONFIG} is valid again but not applied: {running} until "
            "`appliance apply`")


def current() -> tuple[Config | None, str | None]:
    """The configuration the services run, for status and the healthcheck (None: none
    runs), and the problem to report about appliance.toml (None: there is none)."""
    state = read_state()
    try:
        config: Config | None = load(paths.CONFIG)
        error = None
    except ConfigError as e:
        config, error = None, e
    if state is not None and state.mode == WAITING:
        config = None
    elif config is None or state is not None:  # what runs is the last good copy
        try:
            config = load(last_good_path())
        except ConfigError:
            config = None
    return config, describe(error, state)


def _saved_at() -> str:
    try:
        mtime = last_good_path().stat().st_mtime
    except OSError:
        return "at an unknown time"
    return dt.datetime.fromtimestamp(mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
