#!/usr/bin/env bash
# Compares two builds of the criterion handler benchmarks (bench/handlers) on a busy machine,
# where one criterion run after another says little: the two binaries run alternately, round
# after round, and their instructions are counted under valgrind, which no load changes.
#
# Usage: scripts/bench-handlers-compare.sh BEFORE AFTER [ROUNDS]
#   BEFORE, AFTER: bench binaries, e.g. copies of target/release/deps/handlers-<hash> built by
#   `cargo bench -p handler-benches --no-run --locked` at two commits.
#   ROUNDS: alternate runs of each (default 3).
#   ACTIVELOG_BENCH_WRAP: a command prefix for the wall-time runs; as root,
#   "chrt -f 10 taskset -c 1" keeps other processes off the benchmark's CPU.
# Prints, per benchmark, every run's median (µs per item) and the ratio of the medians, then the
# instructions of one iteration of each (criterion's test mode, minus a run that matches nothing).
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 2; }
before="$(realpath "$1")" after="$(realpath "$2")" rounds="${3:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2206 # the prefix is meant to split into words
wrap=(${ACTIVELOG_BENCH_WRAP:-})

for round in $(seq 1 "$rounds"); do
  for which in before after; do
    echo "compare: $which, round $round, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    CRITERION_HOME="$work/$which-$round" "${wrap[@]}" "${!which}" --bench --noplot \
      > "$work/$which-$round.log" 2>&1
  done
done

python3 - "$work" "$rounds" <<'EOF'
import json, pathlib, statistics, sys
work, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = {}
for which in ("before", "after"):
    for r in range(1, rounds + 1):
        for bench in sorted((work / f"{which}-{r}").rglob("new/benchmark.json")):
            meta = json.loads(bench.read_text())
            median = json.loads((bench.parent / "estimates.json").read_text())["median"]
            items = (meta.get("throughput") or {}).get("Elements") or 1
            rows.setdefault(meta["full_id"], {}).setdefault(which, []).append(
                median["point_estimate"] / 1000 / items)
print("| benchmark | before µs per item | after µs per item | after ÷ before (medians) |")
print("|---|---|---|---|")
for name, runs in rows.items():
    b, a = runs.get("before", []), runs.get("after", [])
    ratio = statistics.median(a) / statistics.median(b) if a and b else float("nan")
    print(f"| {name} | {' / '.join(f'{x:.2f}' for x in b)} | {' / '.join(f'{x:.2f}' for x in a)} | {ratio:.2f} |")
EOF

command -v valgrind >/dev/null || { echo "compare: no valgrind, no instruction counts" >&2; exit 0; }
instructions() { # instructions <binary> <filter>: of the process itself, not of a child
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$1" --bench --test "$2" \
    2>&1 >/dev/null | awk '/I *refs:/ {gsub(",", "", $NF); n = $NF} END {print n}'
}
echo
echo "| one iteration, instructions | before | after | after ÷ before |"
echo "|---|---|---|---|"
base_before=$(instructions "$before" no-such-benchmark)
base_after=$(instructions "$after" no-such-benchmark)
for filter in http/create-activity http/list-activities consumer/update-stats envelope/serialise; do
  b=$(( $(instructions "$before" "$filter") - base_before ))
  a=$(( $(instructions "$after" "$filter") - base_after ))
  awk -v f="$filter" -v b="$b" -v a="$a" 'BEGIN {
    printf "| %s | %d | %d | %s |\n", f, b, a, (b > 100000 ? sprintf("%.2f", a / b) : "noise")
  }'
done
