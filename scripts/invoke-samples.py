#!/usr/bin/env python3
"""Every sample event through its function binary with cargo-lambda's emulator.

The Docker-free stand-in for `sam local invoke`: for each crate under functions/, start
`cargo lambda watch` for that crate on loopback (in-memory adapters, seeded from
events/seed.json), run `cargo lambda invoke` with every events/<function>/*.json, and check the
response against events/<function>/expected.json — the same expectations the Rust tests use.
An Amazon MQ sample may expect the invocation to fail (`invocation_error`: text of the error),
as a consumer does on purpose when a batch must go back to the broker.
The functions run as real Lambda binaries speaking the Runtime API; one warm process per
function serves all of its samples, as a warm Lambda would.

Exit status 0 only when every sample gave its expected response. Stdlib only.
Usage: scripts/invoke-samples.sh [function ...]   (default: every function)
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CARGO_LAMBDA = os.environ.get("CARGO_LAMBDA", str(ROOT / ".venv" / "bin" / "cargo-lambda"))
SEED = ROOT / "events" / "seed.json"
# The first invocation of a function compiles it: allow for a slow machine.
INVOKE_TIMEOUT_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cargo lambda watch exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"cargo lambda watch did not listen on {port} within {timeout}s")


def contains(expected, actual) -> bool:
    """Objects may have extra members; arrays and scalars must match exactly (element-wise)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(contains(e, a) for e, a in zip(expected, actual))
        )
    return expected == actual


def check(expected: dict, response: dict) -> list[str]:
    """What differs between an expectation and a function's response; empty when it matches."""
    problems = []
    if "status" in expected:  # an HTTP function: API Gateway HTTP API v2 response
        if response.get("statusCode") != expected["status"]:
            problems.append(f"status {response.get('statusCode')} != {expected['status']}")
        raw = response.get("body") or ""
        body = json.loads(raw) if raw else None
        if "type" in expected and (body or {}).get("type") != expected["type"]:
            problems.append(f"problem type {(body or {}).get('type')} != {expected['type']}")
        if "body" in expected and not contains(expected["body"], body):
            problems.append(f"body {raw[:300]} does not contain {json.dumps(expected['body'])[:300]}")
    elif "batch_item_failures" in expected:  # an SQS consumer: partial batch response
        failed = sorted(f["itemIdentifier"] for f in response.get("batchItemFailures", []))
        if failed != sorted(expected["batch_item_failures"]):
            problems.append(f"batchItemFailures {failed} != {sorted(expected['batch_item_failures'])}")
    elif not contains(expected, response):
        problems.append(f"response {json.dumps(response)[:300]} does not contain {json.dumps(expected)}")
    return problems


def run_function(function: str, log) -> tuple[int, list[str]]:
    events = ROOT / "events" / function
    expected = json.loads((events / "expected.json").read_text())
    samples = sorted(p.name for p in events.glob("*.json") if p.name != "expected.json")
    failures = [f"{function}/{s}: no expectation" for s in samples if s not in expected]
    failures += [f"{function}/{s}: expectation without sample" for s in expected if s not in samples]
    port = free_port()
    env_vars = f"ACTIVELOG_ADAPTERS=memory,ACTIVELOG_SEED_FILE={SEED},RUST_LOG=warn"
    watch = subprocess.Popen(
        [CARGO_LAMBDA, "lambda", "watch", "--package", function, "--ignore-changes", "--quiet",
         "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--env-var", env_vars],
        cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    passed = 0
    try:
        wait_for_port(port, watch, 120)
        for sample in samples:
            if sample not in expected:
                continue
            invoked = subprocess.run(
                [CARGO_LAMBDA, "lambda", "invoke", function, "--data-file", str(events / sample),
                 "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--output-format", "json"],
                cwd=ROOT, capture_output=True, text=True, timeout=INVOKE_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )
            if "invocation_error" in expected[sample]:
                # An Amazon MQ batch the function fails on purpose, so Lambda hands it back.
                said = invoked.stdout + invoked.stderr
                if invoked.returncode == 0 or expected[sample]["invocation_error"] not in said:
                    failures.append(f"{function}/{sample}: expected the invocation to fail with "
                                    f"{expected[sample]['invocation_error']!r}, got {said.strip()[:300]}")
                else:
                    passed += 1
                    print(f"  ok  {function}/{sample} (failed as expected)")
                continue
            if invoked.returncode != 0:
                failures.append(f"{function}/{sample}: invoke failed: {invoked.stderr.strip()[:500]}")
                continue
            try:
                response = json.loads(invoked.stdout)
            except json.JSONDecodeError:
                failures.append(f"{function}/{sample}: not JSON: {invoked.stdout[:300]}")
                continue
            problems = check(expected[sample], response)
            if problems:
                failures.append(f"{function}/{sample}: " + "; ".join(problems))
            else:
                passed += 1
                print(f"  ok  {function}/{sample}")
    finally:
        os.killpg(watch.pid, signal.SIGTERM)
        try:
            watch.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait()
    return passed, failures


def main() -> int:
    if not os.access(CARGO_LAMBDA, os.X_OK):
        print(f"invoke-samples: {CARGO_LAMBDA} not found; run scripts/install-tools.sh", file=sys.stderr)
        return 1
    functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    if len(sys.argv) > 1:  # a subset, by name, while working on some functions
        functions = [f for f in functions if f in sys.argv[1:]]
    missing = [f for f in functions if not (ROOT / "events" / f / "expected.json").exists()]
    if missing:
        print(f"invoke-samples: no samples for {', '.join(missing)}", file=sys.stderr)
        return 1
    log_path = ROOT / "target" / "invoke-samples.log"
    log_path.parent.mkdir(exist_ok=True)
    total_passed, all_failures = 0, []
    with open(log_path, "w") as log:
        for function in functions:
            passed, failures = run_function(function, log)
            total_passed += passed
            all_failures += failures
    for failure in all_failures:
        print(f"  FAIL {failure}")
    print(f"invoke-samples: {total_passed} passed, {len(all_failures)} failed (watch logs: {log_path})")
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())
