#!/usr/bin/env bash
# The reliability suite of issue #14 at full size, ending in one table (docs/reliability.md):
#   1. faults: concurrent creates/updates/deletes through the handlers on the DynamoDB, EventBridge
#      and SQS adapters, every AWS call through the fault proxy in front of moto, then settle and
#      check the invariants (tests/reliability.rs, sized by the RELIABILITY_* variables);
#   2. load: bench/load against `activelog-local` built --release, on each broker of
#      RELIABILITY_BROKERS (default: memory and RabbitMQ on 127.0.0.1:5672), then the same
#      invariants through the public API and /_local/;
#   3. soak: the load in rounds for RELIABILITY_SOAK_SECONDS on memory, RSS at start and end;
#   4. process faults: `activelog-local --aws` on moto killed with SIGKILL mid-load and restarted
#      (local/tests/e2e/aws_mode.rs).
#
# Usage: scripts/reliability.sh [--small]
#   --small  what scripts/test.sh runs: only step 2 at a small size on a debug build (steps 1 and
#            4 run at their small size inside `cargo test`). Its figures mean nothing.
# Sizes: RELIABILITY_OPERATIONS (default 1000), RELIABILITY_USERS (16), RELIABILITY_WORKERS (8),
# RELIABILITY_FAULT_FRACTION (0.1), RELIABILITY_SEED (random, printed), LOAD_USERS (32),
# LOAD_REQUESTS (5000), RELIABILITY_SOAK_SECONDS (180).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/reliability"
mkdir -p "$OUT"
rm -f "$OUT"/*.json

small=0
[ "${1:-}" = "--small" ] && small=1

brokers="${RELIABILITY_BROKERS:-memory rabbitmq://guest:guest@127.0.0.1:5672/%2f}"
step() { printf '\n==> %s\n' "$*" >&2; }

if [ "$small" = 1 ]; then
  step "load (small, debug build): memory"
  cargo build --locked -p activelog-local -p load-bench
  "$TARGET/debug/load-bench" --stack "$TARGET/debug/activelog-local" --broker memory \
    --users 8 --requests 300 --json "$OUT/load-memory.json"
  exit 0
fi

export RELIABILITY_OPERATIONS="${RELIABILITY_OPERATIONS:-1000}"
export RELIABILITY_USERS="${RELIABILITY_USERS:-16}"
export RELIABILITY_WORKERS="${RELIABILITY_WORKERS:-8}"
export RELIABILITY_FAULT_FRACTION="${RELIABILITY_FAULT_FRACTION:-0.1}"
export RELIABILITY_SEED="${RELIABILITY_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
LOAD_USERS="${LOAD_USERS:-32}"
LOAD_REQUESTS="${LOAD_REQUESTS:-5000}"
SOAK_SECONDS="${RELIABILITY_SOAK_SECONDS:-180}"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start" >&2

step "faults (seed $RELIABILITY_SEED, $RELIABILITY_OPERATIONS operations, fault fraction $RELIABILITY_FAULT_FRACTION)"
RELIABILITY_REPORT="$OUT/faults.json" cargo test --locked -p activelog-tests --test integration \
  reliability::faults_at_random -- --nocapture

step "release build of the local stack and the load generator"
cargo build --locked --release -p activelog-local -p load-bench

for broker in $brokers; do
  name="${broker%%:*}"
  step "load on $name: $LOAD_USERS users, $LOAD_REQUESTS requests"
  "$TARGET/release/load-bench" --stack "$TARGET/release/activelog-local" --broker "$broker" \
    --users "$LOAD_USERS" --requests "$LOAD_REQUESTS" --json "$OUT/load-$name.json"
done

step "soak on memory: ${SOAK_SECONDS} s"
"$TARGET/release/load-bench" --stack "$TARGET/release/activelog-local" --broker memory \
  --users "$LOAD_USERS" --requests "$LOAD_REQUESTS" --soak-seconds "$SOAK_SECONDS" \
  --json "$OUT/soak-memory.json"

step "process faults: SIGKILL mid-load on --aws (moto), restart"
kill_started=$(date +%s)
cargo test --locked -p activelog-local --test e2e a_sigkill_mid_load -- --nocapture 2>&1 \
  | tee "$OUT/sigkill.log" >&2
echo "{\"passed\": true, \"seconds\": $(( $(date +%s) - kill_started ))}" >"$OUT/sigkill.json"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at end" >&2
python3 - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = []
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None
f = load("faults.json")
if f:
    faults = ", ".join(f"{k} {v}" for k, v in f["faults"].items())
    rows.append(("faults on moto", f"{f['requests']} requests / {f['aws_calls']} AWS calls",
                 faults, f["invariant_checks_passed"], f"{f['throughput_per_second']:.1f}/s",
                 f"{f['p50_ms']:.0f} / {f['p99_ms']:.0f}", "-"))
for p in sorted(out.glob("load-*.json")) + sorted(out.glob("soak-*.json")):
    l = json.loads(p.read_text())
    kind = "soak" if p.name.startswith("soak") else "load"
    rss = f"{(l['rss_start_kib'] or 0)/1024:.1f} -> {(l['rss_end_kib'] or 0)/1024:.1f} MiB"
    broker = p.stem.split("-", 1)[1]
    rows.append((f"{kind} {broker}", f"{l['requests']} requests, {l['users']} users", "none",
                 l["invariant_checks_passed"], f"{l['throughput_per_second']:.0f}/s",
                 f"{l['p50_ms']:.1f} / {l['p99_ms']:.1f}", rss))
k = load("sigkill.json")
if k:
    rows.append(("SIGKILL --aws", "see sigkill.log", "1 SIGKILL", "passed", "-", "-", "-"))
head = ("run", "operations", "faults injected", "checks passed", "throughput", "p50 / p99 ms", "RSS start -> end")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(str(c) for c in r) + " |")
EOF
