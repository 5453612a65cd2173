#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script and nothing else).
#
#   1. installs the pinned tools the tests need into .venv/ (moto, cfn-lint, SAM CLI, cargo-lambda,
#      schemathesis)
#   2. cargo fmt --check and clippy with warnings denied
#   3. cargo test for the whole workspace: unit, property, in-memory integration, local-stack
#      end-to-end, the AWS adapters against a moto server the tests start on loopback, and the
#      transport conformance suite on memory, SQS (moto) and RabbitMQ (127.0.0.1:5672, started
#      here when it is not running)
#   4. the dependency policy of deny.toml, and the layering (tests/architecture.rs, with step 3)
#   5. the API conformance fuzzer: docs/openapi.yaml against the local stack (schemathesis, all
#      phases including stateful, bounded examples and a fixed seed)
#   6. template lint and validation (cfn-lint + serverless rules, sam validate --lint)
#   7. every sample event through its function binary with cargo-lambda's emulator
#   8. the benchmarks in smoke mode (they run; they are not timed here)
#   9. the reliability suite's load generator at a small size (docs/reliability.md)
#
# Stops at the first failing step and exits non-zero.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "tools (pinned, into .venv)"
bash scripts/install-tools.sh
# The steps below need the same tools; they skip their own install check.
export ACTIVELOG_TOOLS_INSTALLED=1

step "format"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "RabbitMQ on 127.0.0.1:5672 (for the conformance suite and the --broker tests)"
if ! rabbitmqctl await_startup --timeout 5 >/dev/null 2>&1; then
  rabbitmq-server -detached
  rabbitmqctl await_startup --timeout 120
fi

step "tests"
cargo test --workspace --locked

step "dependency policy (deny.toml: licences, bans, duplicates, sources; offline)"
python3 scripts/dependency-policy.py

step "API conformance fuzzing (docs/openapi.yaml against the local stack)"
bash scripts/fuzz-api.sh

step "template lint and validation"
bash scripts/lint-template.sh

step "sample events through cargo lambda invoke"
bash scripts/invoke-samples.sh

step "benchmarks (smoke)"
bash scripts/bench.sh --smoke

# The fault-injection run and the SIGKILL test ran at their small size in "tests" above; this is
# the load generator's small run (docs/reliability.md).
step "reliability: load on the local stack (small)"
bash scripts/reliability.sh --small

step "all checks passed"
