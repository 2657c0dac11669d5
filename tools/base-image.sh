#!/usr/bin/env bash
# Make sure the base image (default debian:trixie-slim) exists locally.
# Present: nothing to do. Pullable: pull it. Neither (no container registry here): build
# an equivalent minimal Debian with debootstrap from the Debian mirror apt already uses,
# and `docker import` it under the same name.
set -euo pipefail

IMAGE=${1:-debian:trixie-slim}
# the suite is the image's tag: debian:trixie-slim is trixie, debian:bookworm-slim bookworm
tag=${IMAGE##*:}
SUITE=${SUITE:-${tag%-slim}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-${MIRROR}-security}

log() { printf 'base-image: %s\n' "$*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
if timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then
  log "pulled $IMAGE"
  exit 0
fi

log "$IMAGE is not available from a registry: building it with debootstrap ($SUITE from $MIRROR)"
[ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }
command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
}
root=$(mktemp -d /var/tmp/appliance-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
  log "debootstrap failed; last lines of $root.log:"; tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Slim it down the way the official -slim image does: no apt lists, downloaded packages,
# docs or man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
       "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/info/*
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
  "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" \
  >"$root/etc/apt/sources.list"
tar -C "$root" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >/dev/null
log "imported $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
