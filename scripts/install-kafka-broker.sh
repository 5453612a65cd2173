#!/usr/bin/env bash
# Installs tansu, the Kafka-protocol broker the Kafka tests start on loopback (an Apache-2.0
# Kafka-API broker written in Rust, from crates.io), pinned, into a cache outside the clone:
#
#   ${ACTIVELOG_TOOLS_CACHE:-$HOME/.cache/activelog}/tansu-<version>/bin/tansu
#
# so a repeat run only checks the stamp (well under a second), while a fresh machine builds it
# (about 15 minutes on 2 busy cores; docs/benchmarks.md has the measured figures). Built with the
# fewest features the tests need: `dynostore` for the in-memory engine (`memory://`) and `libsql`
# for the SQLite engine (`sqlite://`), which keeps topics, messages and committed offsets across a
# broker restart. Prints the executable's path on stdout, and nothing else there.
#
# Environment:
#   ACTIVELOG_TOOLS_CACHE  cache root (default: $HOME/.cache/activelog)
#   FORCE=1                rebuild even when the stamp matches
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql

CACHE="${ACTIVELOG_TOOLS_CACHE:-$HOME/.cache/activelog}"
PREFIX="$CACHE/tansu-$TANSU_VERSION"
BIN="$PREFIX/bin/tansu"
STAMP="$PREFIX/.activelog-features"

log() { printf 'install-kafka-broker: %s\n' "$*" >&2; }

up_to_date() {
  [ "${FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$TANSU_FEATURES" ]
}

install() {
  local started=$SECONDS
  command -v cargo >/dev/null 2>&1 || { log "error: cargo not found"; exit 1; }
  log "building tansu $TANSU_VERSION ($TANSU_FEATURES) into $PREFIX (first run: several minutes)"
  rm -f "$STAMP"
  # --locked: tansu's own Cargo.lock, so every machine builds the same broker.
  nice -n 10 cargo install --locked "tansu@$TANSU_VERSION" --no-default-features \
    --features "$TANSU_FEATURES" --root "$PREFIX" >&2
  [ -x "$BIN" ] || { log "error: the build finished but $BIN is missing"; exit 1; }
  printf '%s\n' "$TANSU_FEATURES" > "$STAMP"
  log "installed in $((SECONDS - started)) s"
}

mkdir -p "$CACHE"
if up_to_date; then
  log "up to date ($BIN)"
else
  # Serialise concurrent runs on one cache.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.tansu-$TANSU_VERSION.lock"
    flock 9
  fi
  up_to_date && log "up to date ($BIN, installed by a concurrent run)" || install
fi
echo "$BIN"
