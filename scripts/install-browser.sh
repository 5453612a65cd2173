#!/usr/bin/env bash
# Installs the headless browser the console's browser tests drive (local/tests/e2e/console.rs):
# Debian's `chromium` and `chromium-driver` packages, pinned by the distribution (the same
# release's security updates keep the two in step; chromedriver refuses a browser of another
# major version). Idempotent: when both are present and their versions agree it only says so.
#
# Needs root (or sudo) and the Debian archive the first time. Prints nothing on stdout; the
# tests find `chromedriver` on PATH and Chromium at /usr/bin/chromium (override with
# ACTIVELOG_CHROMEDRIVER and ACTIVELOG_CHROMIUM).
set -euo pipefail

log() { printf 'install-browser: %s\n' "$*" >&2; }

major() { "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9.]+' | head -1 | cut -d. -f1; }

present() {
  command -v chromedriver >/dev/null 2>&1 && [ -x /usr/bin/chromium ] \
    && [ -n "$(major chromedriver)" ] && [ "$(major chromedriver)" = "$(major /usr/bin/chromium)" ]
}

if present; then
  log "chromium $(major /usr/bin/chromium) and its chromedriver are installed"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || { log "error: no apt-get: install Chromium and chromedriver of one version by hand"; exit 1; }
as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo)
log "installing Debian's chromium and chromium-driver (about 100 MB the first time)"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
present || { log "error: chromium and chromedriver disagree after the install"; exit 1; }
log "chromium $(major /usr/bin/chromium) and its chromedriver are installed"
