#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script and nothing else).
#
#   1. installs the pinned tools the tests need into .venv/ (moto, cfn-lint, SAM CLI, cargo-lambda,
#      schemathesis)
#   2. cargo fmt --check and clippy with warnings denied
#   3. cargo test for the whole workspace: unit, property, in-memory integration, local-stack
#      end-to-end, the AWS adapters against a moto server the tests start on loopback, the
#      transport conformance suite on memory, SQS (moto), RabbitMQ (127.0.0.1:5672, started
#      here when it is not running), Redis Streams (127.0.0.1:6379) and NATS JetStream
#      (127.0.0.1:4222), both also started here when they are not running, and Kafka (a tansu
#      broker per test, installed into a cache by scripts/install-kafka-broker.sh), and every
#      sample event through its function's binary under a loopback Lambda Runtime API (the
#      binaries are built first, once for that test and step 8), and the console in Debian's
#      headless Chromium (installed here by scripts/install-browser.sh)
#   4. the dependency policy of deny.toml, and the layering (tests/architecture.rs, with step 3)
#   5. the API conformance fuzzer: docs/openapi.yaml against the local stack (schemathesis, all
#      phases including stateful, bounded examples and a fixed seed)
#   6. template lint and validation (cfn-lint + serverless rules, sam validate --lint)
#   7. cargo-lambda's emulator runs a function with the workspace's cargo-lambda settings
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

# Redis and NATS run on every machine of this project; started here when they are not (the same
# commands as the machine's own set-up). The restart tests start servers of their own.
step "Redis on 127.0.0.1:6379 and NATS JetStream on 127.0.0.1:4222 (conformance suite, --broker tests)"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
fi

step "Kafka-protocol broker (tansu, built once into a cache outside the clone; the Kafka tests start it)"
ACTIVELOG_TANSU="$(bash scripts/install-kafka-broker.sh)"
export ACTIVELOG_TANSU

step "function binaries (debug; for the samples test and the benchmark smoke)"
bash scripts/function-binaries.sh --locked

step "headless Chromium and chromedriver (Debian's packages; the console's browser tests)"
bash scripts/install-browser.sh

step "tests"
cargo test --workspace --locked

step "dependency policy (deny.toml: licences, bans, duplicates, sources; offline)"
python3 scripts/dependency-policy.py

step "API conformance fuzzing (docs/openapi.yaml against the local stack)"
bash scripts/fuzz-api.sh

step "template lint and validation"
bash scripts/lint-template.sh

step "cargo lambda watch reads the workspace's cargo-lambda settings (one sample)"
bash scripts/cargo-lambda-smoke.sh

step "benchmarks (smoke)"
bash scripts/bench.sh --smoke

# The fault-injection run and the SIGKILL test ran at their small size in "tests" above; this is
# the load generator's small run (docs/reliability.md).
step "reliability: load on the local stack (small)"
bash scripts/reliability.sh --small

step "all checks passed"
