#!/usr/bin/env bash
# Resolve the appliance and every Python dependency into build/wheels on the host, so
# the image build installs from a folder (inside the build there is no index to reach).
# The host's Python (3.11 on Debian 12) need not be the image's (3.13 on Debian 13): a
# wheel built for the host's interpreter only (cffi, say) is fetched again, as the
# binary wheel for the image's Python.
set -euo pipefail
PY=${PY:-.venv/bin/python}
IMAGE_PYTHON=${IMAGE_PYTHON:-3.13}
# build/lib too: setuptools copies sources there and packs all it holds, so a module
# moved or deleted since the last build would still ship in the image
rm -rf build/wheels build/lib
"$PY" -m pip wheel -q --wheel-dir build/wheels ".[console]" 2> >(grep -v '^WARNING: Location' >&2)
host_tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
image_tag=cp${IMAGE_PYTHON/./}
if [ "$host_tag" != "$image_tag" ]; then
  for wheel in build/wheels/*-"$host_tag"-"$host_tag"-*.whl; do
    [ -e "$wheel" ] || continue
    IFS=- read -r name version _ <<<"$(basename "$wheel")"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --dest build/wheels \
      --python-version "$IMAGE_PYTHON" --implementation cp --abi "$image_tag" \
      --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      "$name==$version" 2> >(grep -v '^WARNING: Location' >&2)
    rm "$wheel"
  done
fi
ls build/wheels | sed 's/^/wheels: /' >&2
