#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md in one command: builds what is needed, then prints
#   1. cold start: the harness (bench/cold-start) starts every function binary and the hello-world
#      baseline N times against a loopback Lambda Runtime API (init, init + first invoke, peak RSS):
#      in-memory adapters; AWS adapters with compiled-in roots, then with the system's CA bundle;
#      AWS adapters over TLS to the harness's own endpoint, without and with the connection warmed
#      during init;
#   2. size: the zipped bootstrap of every function and of the baseline
#      (`cargo lambda build --release --arm64 --output-format zip`; x86_64 when the aarch64 standard
#      library cannot be installed, and the table says so);
#   3. handler cost: the criterion benchmarks (bench/handlers), medians per request / per event;
#   4. the local stack next to bare axum: creates at 16 connections to `activelog-local` (memory
#      broker, stats checked exact at the end) and the same creates to the bare endpoint of
#      bench/bare-api, in one run of bench/load, three times over (`load` profile: see
#      docs/benchmarks.md).
# Everything stays on this machine: the functions' AWS endpoint is a loopback port.
#
# Usage: scripts/bench.sh [--smoke] [--runs N] [--skip-size] [--skip-criterion] [--skip-cold-start]
#                        [--skip-local-stack]
#   --smoke   only checks that everything runs, for CI: debug builds, 2 cold starts per binary,
#             each criterion benchmark run once, no size build, one small local-stack run. Its
#             figures mean nothing.
#   --runs N  cold starts per binary (default 20).
#
# A full run builds the workspace in release three times over (native x86_64 for the harness,
# arm64 for the sizes, the bench profile for criterion): about half an hour on 2 busy cores.
# The tables are also written to $CARGO_TARGET_DIR/bench/report.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ACTIVELOG_VENV:-$ROOT/.venv}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET"
ARM_TRIPLE=aarch64-unknown-linux-gnu

smoke=0 runs=20 size=1 criterion=1 cold_start=1 local_stack=1
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; shift ;;
    --runs) [ $# -ge 2 ] || { echo "bench: --runs needs a number" >&2; exit 2; }; runs="$2"; shift 2 ;;
    --skip-size) size=0; shift ;;
    --skip-criterion) criterion=0; shift ;;
    --skip-cold-start) cold_start=0; shift ;;
    --skip-local-stack) local_stack=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$smoke" = 1 ]; then runs=2; size=0; fi

log() { printf 'bench: %s\n' "$*" >&2; }
OUT="$TARGET/bench"
mkdir -p "$OUT"
REPORT="$OUT/report.md"
: > "$REPORT"
emit() { tee -a "$REPORT"; }

cd "$ROOT"
mapfile -t functions < <(find functions -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)

{
  echo "# activelog benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average $(cut -d' ' -f1-3 /proc/loadavg); $(rustc --version)"
  echo
} | emit

timed() { # timed <label> <command...>: runs it and says how long it took
  local label="$1" started=$SECONDS
  shift
  "$@"
  log "$label took $((SECONDS - started)) s"
}

# 1. Cold start ----------------------------------------------------------------------------------
if [ "$cold_start" = 1 ]; then
  if [ "$smoke" = 1 ]; then profile_flag=() profile_dir=debug; else profile_flag=(--release) profile_dir=release; fi
  log "building the functions, the baseline and the harness (${profile_dir})"
  timed "cargo build ${profile_flag[*]}" \
    bash scripts/function-binaries.sh --quiet "${profile_flag[@]}"
  staged="$OUT/functions-$profile_dir"
  rm -rf "$staged" && mkdir -p "$staged"
  for f in "${functions[@]}"; do ln -s "$TARGET/$profile_dir/$f" "$staged/$f"; done
  {
    echo "## Cold start ($profile_dir build, x86_64, $runs runs each, in-memory adapters)"
    echo
  } | emit
  # relay-outbox answers a schedule, not a request: its sample is the scheduled event.
  harness=("$TARGET/$profile_dir/cold-start" --functions "$staged"
    --baseline "$TARGET/$profile_dir/hello-world" --events "$ROOT/events" --runs "$runs"
    --event "relay-outbox=$ROOT/events/relay-outbox/scheduled.json")
  "${harness[@]}" --adapters memory --seed "$ROOT/events/seed.json" --logs "$OUT/logs-memory" | emit
  {
    echo "## Cold start with the AWS adapters (SDK clients built at init; first invoke against a loopback endpoint that answers 404, so its result is an error by design)"
    echo
    echo "Roots of trust compiled in (no \`SSL_CERT_FILE\`: Lambda's default environment sets none)."
    echo
  } | emit
  "${harness[@]}" --adapters aws --logs "$OUT/logs-aws" \
    ${ACTIVELOG_BENCH_AWS_ENDPOINT:+--aws-endpoint "$ACTIVELOG_BENCH_AWS_ENDPOINT"} | emit
  # Where init goes: the same binaries told to trust the system's bundle instead (one file of
  # ~140 roots, parsed at the first TLS configuration), as a custom CA bundle would be given.
  for bundle in /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/certs/ca-certificates.crt; do
    if [ -f "$bundle" ]; then
      {
        echo "## Cold start with the AWS adapters, \`SSL_CERT_FILE=$bundle\` ($(grep -c 'BEGIN CERTIFICATE' "$bundle") roots)"
        echo
      } | emit
      "${harness[@]}" --adapters aws --logs "$OUT/logs-aws-bundle" --env "SSL_CERT_FILE=$bundle" | emit \
        || log "the bundle pass had runs that did not complete (see its table)"
      break
    fi
  done
  # The first request over TLS: the harness's own TLS endpoint (a CA made for the run, given as
  # SSL_CERT_FILE) answers the calls with success; once as is, once with the connection opened
  # during init.
  for warm in 0 1; do
    {
      echo "## Cold start over TLS (AWS adapters, loopback TLS endpoint, custom CA in \`SSL_CERT_FILE\`, \`ACTIVELOG_WARM_CONNECTIONS=$warm\`)"
      echo
    } | emit
    "${harness[@]}" --tls-endpoint --logs "$OUT/logs-tls-warm-$warm" \
      --env "ACTIVELOG_WARM_CONNECTIONS=$warm" | emit \
      || log "the TLS pass had runs that did not complete (see its table and $OUT/logs-tls-warm-$warm)"
  done
fi

# 2. Size ----------------------------------------------------------------------------------------
if [ "$size" = 1 ]; then
  export PATH="$VENV/bin:$PATH"
  command -v cargo-lambda >/dev/null 2>&1 \
    || { log "cargo-lambda not found: run scripts/install-tools.sh (or --skip-size)"; exit 1; }
  has_arm_std() {
    local libdir
    libdir="$(rustc --print target-libdir --target "$ARM_TRIPLE" 2>/dev/null)" || return 1
    compgen -G "$libdir/libstd-*.rlib" >/dev/null
  }
  has_arm_std || timeout 300 rustup target add "$ARM_TRIPLE" >&2 || true
  if has_arm_std; then arch=arm64 arch_flag=(--arm64); else arch="x86_64 (the arm64 standard library could not be installed)" arch_flag=(--x86-64); fi
  # Each function turns on only the SDK services it calls (activelog's aws-* features) and cargo
  # unifies features over the packages of one invocation: one build per set of features, so that
  # no function links a client another one needs.
  log "cargo lambda build --release ${arch_flag[*]} --output-format zip, one build per feature set"
  started=$SECONDS
  declare -A by_features=()
  for f in "${functions[@]}"; do
    key="$(grep -m1 '^activelog' "functions/$f/Cargo.toml")"
    by_features["$key"]+=" -p $f"
  done
  by_features["hello-world"]+=" -p hello-world"
  for key in "${!by_features[@]}"; do
    # shellcheck disable=SC2086 # the package flags are meant to split
    cargo lambda build --quiet --release "${arch_flag[@]}" --output-format zip ${by_features[$key]}
  done
  log "cargo lambda build took $((SECONDS - started)) s"
  {
    echo "## Size: zipped bootstrap, $arch, release profile"
    echo
    echo "| function | bootstrap.zip MB | bootstrap MB | ≤ 2 MB |"
    echo "|---|---|---|---|"
    for f in hello-world "${functions[@]}"; do
      zip="$TARGET/lambda/$f/bootstrap.zip"
      [ -f "$zip" ] || { echo "| $f | missing | | |"; continue; }
      zipped=$(stat -c %s "$zip")
      unzipped=$(unzip -Z -t "$zip" | awk '{print $3}')
      awk -v f="$f" -v z="$zipped" -v u="$unzipped" 'BEGIN {
        printf "| %s | %.2f | %.2f | %s |\n", f, z / 1e6, u / 1e6, (z <= 2e6 ? "yes" : "no")
      }'
    done
    echo
  } | emit
fi

# 3. Handler cost --------------------------------------------------------------------------------
if [ "$criterion" = 1 ]; then
  if [ "$smoke" = 1 ]; then
    log "criterion benchmarks, each run once (debug)"
    timed "criterion smoke" cargo test --quiet -p handler-benches --benches
  else
    log "criterion benchmarks (bench profile = release)"
    rm -rf "$TARGET/criterion"
    timed "cargo bench" cargo bench --quiet -p handler-benches -- --noplot >&2
    {
      echo "## Handler cost (criterion, in-memory adapters, median and its 95% confidence interval)"
      echo
      python3 - "$TARGET/criterion" <<'EOF'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
print("| benchmark | median µs (95% CI) | per item µs |")
print("|---|---|---|")
for bench in sorted(root.rglob("new/benchmark.json")):
    meta = json.loads(bench.read_text())
    median = json.loads((bench.parent / "estimates.json").read_text())["median"]
    us = lambda ns: ns / 1000
    items = (meta.get("throughput") or {}).get("Elements") or 1
    ci = median["confidence_interval"]
    print(f"| {meta['full_id']} | {us(median['point_estimate']):.2f} ({us(ci['lower_bound']):.2f}–{us(ci['upper_bound']):.2f}) | {us(median['point_estimate']) / items:.2f} |")
EOF
      echo
    } | emit
  fi
fi

# 4. The local stack next to bare axum ----------------------------------------------------------
if [ "$local_stack" = 1 ]; then
  # The `load` profile, as scripts/reliability.sh builds the stack: the release profile's
  # opt-level without fat LTO, whose build of activelog-local does not finish on this machine in
  # reasonable time (docs/benchmarks.md, "The local stack next to bare axum").
  if [ "$smoke" = 1 ]; then
    profile=dev bin="$TARGET/debug" requests=64 rounds=1
  else
    profile=load bin="$TARGET/load" requests=4000 rounds=3
  fi
  log "local stack and bare axum ($profile profile), $rounds runs of $requests creates at 16 connections"
  timed "cargo build --profile $profile" \
    cargo build --quiet --locked --profile "$profile" -p activelog-local -p load-bench -p bare-api
  for run in $(seq 1 "$rounds"); do
    "$bin/load-bench" --stack "$bin/activelog-local" --broker memory --users 16 \
      --requests "$requests" --creates-only --bare "$bin/bare-api" --seed "$run" \
      --json "$OUT/local-stack-$run.json" > /dev/null
  done
  {
    echo "## The local stack next to bare axum ($profile profile, memory broker, 16 connections, $requests creates per run, $rounds runs)"
    echo
    python3 - "$OUT" "$rounds" <<'EOF'
import json, pathlib, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
runs = [json.loads((out / f"local-stack-{r}.json").read_text()) for r in range(1, rounds + 1)]
def row(name, pick):
    values = [pick(r) for r in runs]
    print(f"| {name} | {' / '.join(f'{v:.2f}' for v in values)} | {statistics.median(values):.2f} |")
print("| figure | each run | median |")
print("|---|---|---|")
row("activelog-local, creates per second", lambda r: r["throughput_per_second"])
row("bare axum, creates per second", lambda r: r["bare"]["throughput_per_second"])
row("activelog-local ÷ bare axum, throughput", lambda r: r["throughput_vs_bare"])
row("activelog-local p50 ms", lambda r: r["p50_ms"])
row("activelog-local p99 ms", lambda r: r["p99_ms"])
row("bare axum p50 ms", lambda r: r["bare"]["p50_ms"])
row("bare axum p99 ms", lambda r: r["bare"]["p99_ms"])
row("activelog-local CPU µs per create (request and pipeline)", lambda r: r["cpu_us_per_request"] or float("nan"))
row("bare axum CPU µs per create", lambda r: r["bare"]["cpu_us_per_request"] or float("nan"))
print()
print("Stats exact at the end (every user's totals against its listing): "
      + ", ".join("yes" if not r["violations"] else f"no ({len(r['violations'])} violations)" for r in runs))
EOF
    echo
  } | emit
fi

log "report written to $REPORT"
