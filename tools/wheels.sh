#!/usr/bin/env bash
# Resolve the appliance and every Python dependency into build/wheels on the host, so
# the image build installs from a folder (inside the build there is no index to reach).
set -euo pipefail
PY=${PY:-.venv/bin/python}
# build/lib too: setuptools copies sources there and packs all it holds, so a module
# moved or deleted since the last build would still ship in the image
rm -rf build/wheels build/lib
"$PY" -m pip wheel -q --wheel-dir build/wheels ".[console]" 2> >(grep -v '^WARNING: Location' >&2)
ls build/wheels | sed 's/^/wheels: /' >&2
