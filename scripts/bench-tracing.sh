#!/usr/bin/env bash
# The cost of tracing (issue #19), side by side in one run: the code built without the `otel`
# feature and with it (the functions' default), then
#   1. size: create-activity and update-stats, each stripped release binary zipped (deflate -9),
#      as Lambda's bootstrap.zip;
#   2. cold start: the harness (bench/cold-start) against the hello-world baseline, in-memory
#      adapters, the binaries interleaved round by round: first without an endpoint (the feature
#      built in, export off), then with OTEL_EXPORTER_OTLP_ENDPOINT set (exporter built at init,
#      spans flushed at the end of the first invocation to a loopback port nobody listens on);
#   3. handler µs: the criterion benchmarks (bench/handlers, bench profile) built without and with
#      `otel`, compared by scripts/bench-handlers-compare.sh (alternate runs, medians, and the
#      instructions of one iteration under valgrind, which the machine's load does not change):
#      first without an endpoint, then with OTEL_EXPORTER_OTLP_ENDPOINT set to a loopback port
#      nobody listens on (the `otel` build exports: spans built, batched and encoded, each export
#      refused at connect; the build without `otel` ignores the variable).
# Native release builds (the profile that ships; fat LTO): about 10 min each on quiet 2 cores.
#
# Usage: scripts/bench-tracing.sh [--runs N] [--rounds N] [--handlers-only | --skip-handlers]
#   --runs N         cold starts per binary (default 20; a bare number means the same)
#   --rounds N       alternate criterion runs of each handler build per comparison (default 3)
#   --handlers-only  only part 3; --skip-handlers: only parts 1 and 2
#   ACTIVELOG_BENCH_WRAP: passed on to bench-handlers-compare.sh; as root,
#   "chrt -f 10 taskset -c 1" keeps other processes off the benchmarks' CPU.
# Output: the tables on stdout, also in $CARGO_TARGET_DIR/bench/tracing/report.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
runs=20 rounds=3 sizes=1 handlers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || { echo "bench-tracing: --runs needs a number" >&2; exit 2; }; runs="$2"; shift 2 ;;
    --rounds) [ $# -ge 2 ] || { echo "bench-tracing: --rounds needs a number" >&2; exit 2; }; rounds="$2"; shift 2 ;;
    --handlers-only) sizes=0; shift ;;
    --skip-handlers) handlers=0; shift ;;
    [0-9]*) runs="$1"; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "bench-tracing: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
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

{
  echo "# Tracing on and off, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg); $(rustc --version); x86_64 release profile"
  echo
} | tee "$OUT/report.md"

if [ "$sizes" = 1 ]; then
  packages=()
  for f in "${functions[@]}"; do packages+=(-p "$f"); done
  timed "release build without otel" cargo build --quiet --release --no-default-features "${packages[@]}"
  for f in "${functions[@]}"; do cp "$TARGET/release/$f" "$OUT/bin/$f"; done
  timed "release build with otel" cargo build --quiet --release "${packages[@]}" -p hello-world -p cold-start
  for f in "${functions[@]}"; do cp "$TARGET/release/$f" "$OUT/bin/$f-otel"; done

  {
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
  } | tee -a "$OUT/report.md"

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
fi

if [ "$handlers" = 1 ]; then
  # The bench binary cargo built last (its name carries a hash).
  bench_binary() {
    cargo bench --locked -p handler-benches --no-run --message-format=json "$@" |
      python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "handlers" and m.get("executable"):
        print(m["executable"])'
  }
  timed "bench build without otel" bench_binary >"$OUT/handlers-path"
  cp "$(cat "$OUT/handlers-path")" "$OUT/bin/handlers"
  timed "bench build with otel" bench_binary --features otel >"$OUT/handlers-path"
  cp "$(cat "$OUT/handlers-path")" "$OUT/bin/handlers-otel"
  {
    echo "## Handler cost, no endpoint (before: built without otel; after: with otel, export off)"
    echo
    echo "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); runs wrapped in: ${ACTIVELOG_BENCH_WRAP:-nothing}"
    echo
    env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
      bash scripts/bench-handlers-compare.sh "$OUT/bin/handlers" "$OUT/bin/handlers-otel" "$rounds"
    echo
    echo "## Handler cost, OTEL_EXPORTER_OTLP_ENDPOINT set (before: without otel, ignores it; after: with otel, exporting)"
    echo
    echo "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 \
      bash scripts/bench-handlers-compare.sh "$OUT/bin/handlers" "$OUT/bin/handlers-otel" "$rounds"
    echo
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee -a "$OUT/report.md"
fi
log "report written to $OUT/report.md"
