#!/usr/bin/env bash
# The cost of tracing (issue #19), side by side in one run: create-activity and update-stats built
# without the `otel` feature and with it (the default), then
#   1. size: each stripped release binary zipped (deflate -9), as Lambda's bootstrap.zip;
#   2. cold start: the harness (bench/cold-start) against the hello-world baseline, in-memory
#      adapters, the binaries interleaved round by round: first without an endpoint (the feature
#      built in, export off), then with OTEL_EXPORTER_OTLP_ENDPOINT set (exporter built at init,
#      spans flushed at the end of the first invocation to a loopback port nobody listens on).
# Native release builds (the profile that ships; fat LTO): about 10 min each on quiet 2 cores.
#
# Usage: scripts/bench-tracing.sh [RUNS]   (cold starts per binary, default 20)
# Output: the tables on stdout, also in $CARGO_TARGET_DIR/bench/tracing/report.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
runs="${1:-20}"
OUT="$TARGET/bench/tracing"
functions=(create-activity update-stats)
cd "$ROOT"
rm -rf "$OUT" && mkdir -p "$OUT/bin" "$OUT/zip"
log() { printf 'bench-tracing: %s\n' "$*" >&2; }
timed() {
  local label="$1" started=$SECONDS
  shift
  "$@"
  log "$label took $((SECONDS - started)) s"
}

packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
timed "release build without otel" cargo build --quiet --release --no-default-features "${packages[@]}"
for f in "${functions[@]}"; do cp "$TARGET/release/$f" "$OUT/bin/$f"; done
timed "release build with otel" cargo build --quiet --release "${packages[@]}" -p hello-world -p cold-start
for f in "${functions[@]}"; do cp "$TARGET/release/$f" "$OUT/bin/$f-otel"; done

{
  echo "# Tracing on and off, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg); $(rustc --version); x86_64 release profile"
  echo
  echo "| binary | zip bytes | binary bytes |"
  echo "|---|---|---|"
  for b in hello-world "${functions[@]}" "${functions[@]/%/-otel}"; do
    src="$OUT/bin/$b"
    [ "$b" = hello-world ] && src="$TARGET/release/hello-world"
    rm -f "$OUT/zip/bootstrap" "$OUT/zip/$b.zip"
    cp "$src" "$OUT/zip/bootstrap"
    (cd "$OUT/zip" && zip -q -9 "$b.zip" bootstrap)
    echo "| $b | $(stat -c %s "$OUT/zip/$b.zip") | $(stat -c %s "$src") |"
  done
  echo
} | tee "$OUT/report.md"

harness=("$TARGET/release/cold-start" --functions "$OUT/bin" --baseline "$TARGET/release/hello-world"
  --events "$ROOT/events" --runs "$runs" --adapters memory --seed "$ROOT/events/seed.json"
  --event "create-activity-otel=$ROOT/events/create-activity/valid.json"
  --event "update-stats-otel=$ROOT/events/update-stats/batch.json")
{
  echo "## Cold start, no endpoint (export off; the -otel binaries have the feature built in)"
  echo
  "${harness[@]}" --logs "$OUT/logs-off"
  echo
  echo "## Cold start, OTEL_EXPORTER_OTLP_ENDPOINT set (the -otel binaries export; the others ignore it)"
  echo
  "${harness[@]}" --logs "$OUT/logs-on" --env "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9"
} | tee -a "$OUT/report.md"
log "report written to $OUT/report.md"
