#!/usr/bin/env bash
# Checks the developer workflow the README documents: `cargo lambda watch` (cargo-lambda's
# emulator) serves a function with the workspace's cargo-lambda settings (`Cargo.toml`,
# `[workspace.metadata.lambda.watch]`: in-memory adapters seeded with events/seed.json), and
# `cargo lambda invoke --data-file` gets its answer. One seeded read is enough to tell: without
# those settings the function starts on the AWS adapters and fails for want of TABLE_NAME.
#
# What each sample answers is the Rust test's business (tests/sample_binaries.rs runs every sample
# through its binary); this only proves that cargo-lambda reads the settings and runs the binary.
#
# Usage: scripts/cargo-lambda-smoke.sh   (run from anywhere; it works from the workspace root,
# where the settings' relative seed path points)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ "${ACTIVELOG_TOOLS_INSTALLED:-}" = 1 ] || bash scripts/install-tools.sh >/dev/null
export PATH="$ROOT/.venv/bin:$PATH"

function=get-activity
sample=events/$function/valid.json
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="${CARGO_TARGET_DIR:-$ROOT/target}/cargo-lambda-smoke.log"
mkdir -p "$(dirname "$log")"

# No --env-var here: the settings must come from Cargo.toml. The address must be given: cargo-lambda
# 1.9.2 lets its command-line default (`::`) win over an `invoke_address` in the metadata.
setsid cargo lambda watch --package "$function" --ignore-changes --quiet \
  --invoke-address 127.0.0.1 --invoke-port "$port" >"$log" 2>&1 </dev/null &
watch=$!
trap 'kill -TERM -- "-$watch" 2>/dev/null || true; wait "$watch" 2>/dev/null || true' EXIT

for _ in $(seq 1 600); do
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$watch" 2>/dev/null || { echo "cargo-lambda-smoke: cargo lambda watch exited (log: $log)" >&2; exit 1; }
  sleep 0.5
done

# The first invocation compiles the function: allow for a slow machine. A function that cannot
# start leaves the invocation pending, so the log is watched for its exit meanwhile.
answer_file="$(mktemp)"
timeout 900 cargo lambda invoke "$function" --data-file "$sample" \
  --invoke-address 127.0.0.1 --invoke-port "$port" --output-format json >"$answer_file" &
invoke=$!
while kill -0 "$invoke" 2>/dev/null; do
  if grep -q 'command exited' "$log"; then
    kill "$invoke" 2>/dev/null || true
    echo "cargo-lambda-smoke: $function did not start under cargo lambda watch:" >&2
    grep -v '^ *INFO' "$log" | tail -n 5 >&2
    exit 1
  fi
  sleep 1
done
wait "$invoke" || { echo "cargo-lambda-smoke: cargo lambda invoke failed (log: $log)" >&2; exit 1; }
answer="$(cat "$answer_file")"
rm -f "$answer_file"
status="$(printf '%s' "$answer" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("statusCode"))')"
if [ "$status" != 200 ]; then
  echo "cargo-lambda-smoke: $sample answered $status, not 200: ${answer:0:300} (log: $log)" >&2
  exit 1
fi
echo "cargo-lambda-smoke: cargo lambda watch ran $function with the workspace's settings: $sample answered 200"
