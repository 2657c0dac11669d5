"""The data volume's VERSION file: which format the volume is in, and who wrote it.

It is two lines of text, `key value`, written atomically:

    format 2
    written-by appliance 0.2.0 (Debian 13)

`format` (an integer) is what the boot compares with its own `CURRENT_FORMAT`;
`written-by` (free text) names the release that last wrote the file, for the messages.
A reader ignores lines it does not know, so a later release may add some. Format 1 is
the Debian 12 images, which wrote no VERSION at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import appliance
from appliance import paths
from appliance.config import write_atomic

# The format of the volumes this image writes; appliance.migrations has the steps from
# every older one.
CURRENT_FORMAT = 2
FORMAT_1 = "the Debian 12 images, which wrote no VERSION"


class VersionUnreadable(Exception):
    """VERSION exists but says nothing we can trust."""


@dataclass(frozen=True)
class VolumeVersion:
    format: int
    written_by: str = ""

    def text(self) -> str:
        return f"format {self.format}\nwritten-by {self.written_by}\n"


def this_release() -> str:
    """`appliance 0.2.0 (Debian 13)`: what this image writes as written-by."""
    try:
        debian = (paths.ROOT / "etc/debian_version").read_text(encoding="utf-8").strip()
    except OSError:
        debian = ""
    major = debian.split(".")[0]
    return f"appliance {appliance.__version__}" + (f" (Debian {major})" if major else "")


def parse(text: str) -> VolumeVersion:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            fields.setdefault(key, value.strip())
    number = fields.get("format", "")
    if not number.isdigit() or int(number) < 1:
        raise VersionUnreadable(f"no `format N` line (found {text[:80]!r})")
    return VolumeVersion(int(number), fields.get("written-by", ""))


def read(path: Path | None = None) -> VolumeVersion | None:
    """The volume's version; None when it has no VERSION. Raises VersionUnreadable."""
    path = path or paths.VERSION
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise VersionUnreadable(str(e)) from None
    return parse(text)


def write(format_: int = CURRENT_FORMAT) -> VolumeVersion:
    """Record that this release wrote the volume in FORMAT_ (atomically)."""
    version = VolumeVersion(format_, this_release())
    write_atomic(paths.VERSION, version.text(), mode=0o644)
    return version
