#!/usr/bin/env bash
# Conformance fuzzing: docs/openapi.yaml against the running local stack, with schemathesis
# (pinned in requirements-dev.txt). Every phase runs — examples, coverage, fuzzing and stateful
# (create, then read, change and delete what was created) — and every check except `ignored_auth`:
# local mode authenticates nobody, the `x-user-id` header stands in for the JWT. Any request the
# spec allows but the API refuses, or the reverse, any undocumented status, header or body, fails.
#
# Bounded for CI: FUZZ_MAX_EXAMPLES cases per operation and phase (default 25) with a fixed
# FUZZ_SEED, so a run is repeatable and takes about a minute; raise both for a deeper search:
#   FUZZ_MAX_EXAMPLES=500 FUZZ_SEED=$RANDOM scripts/fuzz-api.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${ACTIVELOG_VENV:-$ROOT/.venv}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-25}"
SEED="${FUZZ_SEED:-20261202}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

[ -x "$VENV/bin/st" ] || { echo "fuzz-api: schemathesis missing; run scripts/install-tools.sh" >&2; exit 1; }

cargo build --locked --quiet -p activelog-local
WORK="$(mktemp -d)"
LOG="$WORK/stack.log"
"$TARGET_DIR/debug/activelog-local" --port 0 >"$LOG" 2>&1 &
STACK=$!
cleanup() { kill "$STACK" 2>/dev/null || true; wait "$STACK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

address=""
for _ in $(seq 1 300); do
  address="$(grep -m1 '"activelog-local listening"' "$LOG" 2>/dev/null \
    | "$VENV/bin/python" -c 'import json, sys; print(json.loads(sys.stdin.readline())["address"])' 2>/dev/null || true)"
  [ -n "$address" ] && break
  kill -0 "$STACK" 2>/dev/null || { cat "$LOG" >&2; echo "fuzz-api: the local stack exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { cat "$LOG" >&2; echo "fuzz-api: the local stack did not start" >&2; exit 1; }

started=$SECONDS
status=0
# Hooks (scripts/fuzz_hooks.py) and settings (scripts/schemathesis.toml): the two rules no
# schema can state, and 412 counted as a state of the activity. `unsupported_method` is left out
# because API Gateway answers a method with no route 404, not 405, and the local stack does as
# API Gateway does.
PYTHONPATH="$ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=fuzz_hooks \
"$VENV/bin/st" --config-file scripts/schemathesis.toml run docs/openapi.yaml \
  --url "http://$address" \
  --header 'x-user-id: fuzz-user' \
  --phases examples,coverage,fuzzing,stateful \
  --checks all --exclude-checks ignored_auth,unsupported_method \
  --generation-with-security-parameters false \
  --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
  --generation-database none \
  --workers 1 --no-color \
  || status=$?
echo "fuzz-api: ${MAX_EXAMPLES} examples per operation, seed ${SEED}, $((SECONDS - started)) s, exit ${status}"
if [ "$status" -ne 0 ]; then
  echo "fuzz-api: last lines of the local stack's log:" >&2
  tail -n 20 "$LOG" >&2
fi
exit "$status"
