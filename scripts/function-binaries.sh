#!/usr/bin/env bash
# Builds every function binary (functions/*), the cold-start baseline (bench/hello-world) and its
# harness (bench/cold-start) in ONE cargo invocation, passing any extra arguments to `cargo build`
# (`--release`, `--quiet`, `--message-format ...`).
#
# One command for its three users, so that a run of scripts/test.sh builds these binaries once:
# the samples test (tests/sample_binaries.rs, which runs it to be sure it never runs a stale
# binary), the benchmark (scripts/bench.sh) and scripts/test.sh itself. Cargo unifies features
# over the packages it is asked to build, so another set of packages (or a build per function)
# would compile the library and its dependencies a second time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
packages=()
for manifest in functions/*/Cargo.toml; do packages+=(-p "$(basename "$(dirname "$manifest")")"); done
exec cargo build "$@" "${packages[@]}" -p hello-world -p cold-start
