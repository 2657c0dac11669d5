#!/usr/bin/env bash
# Make sure "$PY -m venv" works before the Makefile makes its virtualenv. Debian's python3
# has no ensurepip until python3-venv is installed: as root this installs it, without root
# it names the package and fails. Does nothing where venv already works.
set -euo pipefail
PY=${PY:-python3}

"$PY" -c 'import venv, ensurepip' 2>/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "python-venv: $PY cannot make a virtualenv; run: sudo apt-get install -y python3-venv" >&2
  exit 1
fi
echo "python-venv: installing Debian's python3-venv" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q python3-venv >/dev/null
"$PY" -c 'import venv, ensurepip'
