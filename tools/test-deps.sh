#!/usr/bin/env bash
# The programs the end-to-end tests run on the host, installed from Debian's packages.
# Does nothing when every one is present; installs the missing ones as root; without root
# it names them and the command to run, and fails (a test must not fail later, obscurely,
# for a missing tool). `make e2e` and `make test` call it, as they call docker-engine.sh.
set -euo pipefail

# THE list: one line per Debian package, with what proves it is installed (a command on
# PATH, or an absolute path) and the tests that need it. Add a test tool here, nowhere else.
DEPS=(
  "libmail-dkim-perl   dkimproxy-verify     test_50: DKIM signatures checked by code not ours"
  "tmux                tmux                 test_75: the console in a real terminal"
  "chromium            /usr/bin/chromium    test_80: the webmail in a real browser"
  "chromium-driver     /usr/bin/chromedriver test_80: selenium drives chromium through it"
  "fonts-liberation    /usr/share/fonts/truetype/liberation test_80: fonts for the pages"
  "testssl.sh          testssl              test_80: the TLS scan of every port"
)

log() { printf 'test-deps: %s\n' "$*" >&2; }

present() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for line in "${DEPS[@]}"; do
  read -r package probe _ <<<"$line"
  present "$probe" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  log "the e2e tests need these Debian packages, and I am not root to install them:"
  log "  ${missing[*]}"
  log "run: sudo apt-get install -y ${missing[*]}   (then make test again)"
  exit 1
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q "${missing[@]}" >/dev/null
for line in "${DEPS[@]}"; do
  read -r package probe _ <<<"$line"
  present "$probe" || { log "$package is installed but $probe is still missing"; exit 1; }
done
