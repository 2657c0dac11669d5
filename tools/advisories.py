"""Known advisories for the exact Python packages the image installs (build/wheels).

PyPI's JSON API lists the vulnerabilities the Python advisory database (OSV) knows of
in a project's newest release, with the versions that fix them. `make advisories` asks
it for every wheel `make wheels` resolved. A wheel older than the newest release is
named too (this endpoint tells nothing about older releases: read its changelog).
Exit 1 if any wheel has an advisory. Needs PyPI over HTTPS.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

WHEELS = Path(__file__).resolve().parents[1] / "build" / "wheels"
API = "https://pypi.org/pypi/{name}/json"


def packages(folder: Path) -> list[tuple[str, str]]:
    found = set()
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        found.add((re.sub(r"[-_.]+", "-", name).lower(), version))
    return sorted(found)


def project(name: str) -> dict:
    with urllib.request.urlopen(API.format(name=name), timeout=30) as r:
        return dict(json.load(r))


def main() -> int:
    found = packages(WHEELS)
    if not found:
        print(f"no wheels in {WHEELS}: run `make wheels` first", file=sys.stderr)
        return 2
    bad = 0
    for name, version in found:
        if name == "appliance":
            continue
        info = project(name)
        newest = info["info"]["version"]
        if version != newest:
            print(f"{name} {version}: older than the newest release {newest}: "
                  "advisories unknown here")
            continue
        vulns = info.get("vulnerabilities") or []
        print(f"{name} {version}: " + ("no known advisories" if not vulns else
                                       f"{len(vulns)} advisories"))
        for v in vulns:
            bad += 1
            fixed = ", ".join(v.get("fixed_in") or []) or "no fix yet"
            ids = ", ".join([v.get("id", "?"), *(v.get("aliases") or [])])
            print(f"  {ids}: {(v.get('summary') or v.get('details') or '')[:100]} "
                  f"(fixed in {fixed})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
