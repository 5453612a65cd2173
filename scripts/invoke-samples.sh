#!/usr/bin/env bash
# Runs every events/<function>/*.json through its function binary with `cargo lambda watch` +
# `cargo lambda invoke` (in-memory adapters) and checks each response against expected.json: the
# Docker-free stand-in for `sam local invoke`. See scripts/invoke-samples.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "${ACTIVELOG_TOOLS_INSTALLED:-}" = 1 ] || bash "$ROOT/scripts/install-tools.sh" >/dev/null
# cargo-lambda finds zig on PATH for cross builds; the emulator itself needs only cargo.
export PATH="$ROOT/.venv/bin:$PATH"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/invoke-samples.py" "$@"
