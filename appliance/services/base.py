"""The one contract every service of the appliance implements.

A service is whatever the container runs for one job (Postfix, Dovecot, our SMTP
daemons, ...). `appliance.services.registry.SERVICES` lists them in order; the boot
sequence (appliance.boot), `appliance apply` and `appliance status` loop over that list
and never name a service. Each service says, in its own module:

- `render(config)`: its files, a pure function of the validated configuration;
- `check(staged, run)`: its own checker (postconf, doveconf, nginx -t, ...) run against
  the staged files; raises ConfigError, so nothing is written;
- `install(change, run)`: what writing its files needs done at once, reload or not
  (compiling Sieve scripts, the SMTP daemons' copy of a new certificate);
- `reload(change, run)`: tell the running programs; returns what was done, each line as
  the CLI and the console show it (a failure ends in RELOAD_FAILED);
- `programs(config)`: its supervisord programs;
- `prepare()`: its folders on the volume and in /run, before any configuration is read
  (at boot, and after a restore: safe while everything runs);
- `stale_runtime()`: the pid files and sockets a killed container leaves behind, which
  only the boot removes (stale pid files make daemons think they already run once PIDs
  get reused);
- `setup(config)`: what rendering needs made once (keys, databases);
- `starting(config)`: what must happen just before supervisord starts it;
- `health(config)`: problems and facts for `appliance status`;
- `warnings(config)`: settings that are valid but probably unwanted (apply shows them);
- `serves(certificate)`: whether its own copy of the TLS pair is that one.

Every method has a default that does nothing, so a service implements only its own. A
service's files come from its module's `render(config)` function (which the rendering
tests call directly): the class takes it as is, `render = staticmethod(render)`.
Commands run through a `Runner`, so the decisions can be tested with a fake one.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from appliance.config import ConfigError

if TYPE_CHECKING:
    from appliance.config import Config
    from appliance.tls import CertificatePair

log = logging.getLogger("appliance.apply")

COMMAND_TIMEOUT_S = 60
RELOAD_FAILED = " FAILED (see docker compose logs)"  # after what apply told a service


@dataclass(frozen=True)
class RenderedFile:
    """One generated file. `path` is absolute inside the container (re-rooted in tests)."""

    path: str
    text: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # holds a password in clear: its diff is never shown


@dataclass(frozen=True)
class Program:
    """One supervisord program (appliance.services.supervisord writes the blocks)."""

    name: str
    command: str
    priority: int  # lower starts first
    stopwait: int = 30  # seconds between TERM and KILL


@dataclass(frozen=True)
class Completed:
    """How a command ended. `error` says why it could not run at all (not found,
    timed out); then returncode is -1."""

    returncode: int
    stdout: str = ""
    stderr: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return self.error or (self.stdout + self.stderr).strip()


class Runner(Protocol):
    def __call__(self, *argv: str, timeout: float = COMMAND_TIMEOUT_S) -> Completed: ...


def run_command(*argv: str, timeout: float = COMMAND_TIMEOUT_S) -> Completed:
    """The real Runner: ARGV as a child process, its output captured."""
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Completed(-1, error=str(e))
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def reloaded(run: Runner, *argv: str) -> bool:
    """Run a reload command; a failure is logged loudly (its files are in place)."""
    done = run(*argv)
    if done.error:
        log.error("%s failed: %s", " ".join(argv), done.error)
    elif not done.ok:
        log.error("%s failed (exit %d): %s", " ".join(argv), done.returncode, done.output)
    return done.ok


def said(what: str, ok: bool) -> str:
    """What was done, as the console and the CLI show it: a failure is said too."""
    return what if ok else what + RELOAD_FAILED


def checked(run: Runner, what: str, *argv: str, warnings_fail: bool = False) -> None:
    """Run a service's checker; ConfigError with what it complained about. Checkers
    print the whole configuration too: only lines with a warning or error are quoted.
    WARNINGS_FAIL: a complaint fails the check even with exit 0 (postconf)."""
    done = run(*argv)
    if done.error:
        raise ConfigError(f"{what} check could not run: {done.error}")
    complaints = [line for line in done.stderr.splitlines()
                  if any(w in line.lower() for w in ("warning", "fatal", "error"))]
    if not done.ok or (warnings_fail and complaints):
        detail = "; ".join(complaints) or done.stderr.strip() or f"exit {done.returncode}"
        raise ConfigError(f"{what} refused the new configuration: {detail}")


@dataclass(frozen=True)
class Staged:
    """The staging tree a check runs in: every changed file, and the live copies of the
    folders services declare in `stage_dirs`, re-rooted under `root`."""

    root: Path
    live: Path  # where the running files are ("/" in the container)
    files: tuple[RenderedFile, ...]  # this service's changed files

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def staged_or_live(self, path: str) -> Path:
        """Only changed files are staged: the staged copy if there is one, else the live."""
        staged = self.path(path)
        return staged if staged.exists() else self.live / path.lstrip("/")


@dataclass
class Change:
    """What one apply changed, as each service's install() and reload() see it."""

    config: Config
    files: tuple[RenderedFile, ...]  # this service's changed files (maybe none)
    paths: frozenset[str]  # every changed file's path, of every service
    previous: dict[str, str | None]  # this service's changed files as they were
    certificate: CertificatePair | None = None  # a new pair for every TLS service
    live: Path = Path("/")  # where the running files are (a temporary root in tests)
    # supervisord's programs running or starting, asked once, after supervisord's own
    # reload (which may just have started or removed some)
    running: Callable[[], set[str]] = field(default=lambda: set(), repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.files)

    def real(self, path: str) -> Path:
        return self.live / path.lstrip("/")


@dataclass
class Health:
    """What `appliance status` reports for a service: problems (the appliance is then
    unwell) and facts, one `label: value` line each."""

    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


class Service:
    """The contract (see the module docstring); subclasses override what they do."""

    name: str = ""
    # live folders copied into the staging tree before the changed files, for a checker
    # that reads a whole folder (includes, maps)
    stage_dirs: tuple[str, ...] = ()
    # reloaded when a new TLS certificate is dropped in, even with no file changed
    uses_certificate: bool = False

    def render(self, config: Config) -> list[RenderedFile]:
        return []

    def check(self, staged: Staged, run: Runner) -> None:
        return None

    def install(self, change: Change, run: Runner) -> None:
        return None

    def reload(self, change: Change, run: Runner) -> list[str]:
        return []

    def programs(self, config: Config) -> list[Program]:
        return []

    def prepare(self) -> None:
        return None

    def stale_runtime(self) -> list[Path]:
        return []

    def setup(self, config: Config) -> None:
        return None

    def starting(self, config: Config) -> None:
        return None

    def health(self, config: Config | None) -> Health:
        return Health()

    def warnings(self, config: Config) -> list[str]:
        return []

    def serves(self, certificate: CertificatePair) -> bool:
        """Whether its copy of the TLS pair is this one (only for a service that keeps
        a copy of its own; the others read the volume's at reload)."""
        return True


def supervisorctl(run: Runner, *args: str) -> bool:
    """`supervisorctl ARGS`, its failure logged."""
    return reloaded(run, "supervisorctl", *args)


def installed_command(name: str) -> str:
    """The path of one of our console scripts (`appliance`), beside this Python."""
    return str(Path(sys.executable).with_name(name))
