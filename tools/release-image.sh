#!/usr/bin/env bash
# Build the image of an earlier release from git, for the upgrade test
# (tests/e2e/test_99_upgrade.py): `git archive COMMIT` into a temporary folder, then that
# tree's own `make image` (its own base image, its own virtualenv and wheels). Docker's
# layer cache makes a rebuild quick when the layers are still there; nothing to do when
# the tag exists.
#   tools/release-image.sh COMMIT [TAG]     TAG defaults to appliance:release-<short commit>
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'release-image: %s\n' "$*" >&2; }

commit=${1:?usage: tools/release-image.sh COMMIT [TAG]}
if ! full=$(git rev-parse -q --verify "$commit^{commit}"); then
  log "$commit is not in this clone's history (a shallow clone? git fetch --unshallow)"
  exit 1
fi
short=$(git rev-parse --short=7 "$full")
tag=${2:-appliance:release-$short}

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi

tree=$(mktemp -d "${TMPDIR:-/tmp}/appliance-release-$short.XXXXXX")
trap 'rm -rf "$tree"' EXIT
git archive "$full" | tar -x -C "$tree"
log "building $tag from $short in $tree"
start=$SECONDS
# The old tree's Makefile decides its base image and the rest: nothing of ours (a
# BASE_IMAGE or IMAGE in the environment, a parent make's command line) reaches it.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BASE_IMAGE -u IMAGE -u VIRTUAL_ENV \
    make -C "$tree" -s image IMAGE="$tag" >"$tree.log" 2>&1; then
  log "the build failed; last lines of its output:"
  tail -n 30 "$tree.log" >&2
  rm -f "$tree.log"
  exit 1
fi
rm -f "$tree.log"
log "built $tag in $((SECONDS - start)) s"
