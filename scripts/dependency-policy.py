#!/usr/bin/env python3
"""The dependency policy of deny.toml, checked from `cargo metadata` without cargo-deny.

cargo-deny is the usual tool, but installing it (`cargo install --locked cargo-deny`) compiles
about 330 crates: on the 2-core CI machine it had not finished after 8 minutes, longer than the
rest of the suite's Rust build. This script applies the same configuration file with the same
meaning for the three checks CI needs offline, so switching to cargo-deny later is running
`cargo deny check licenses bans sources` on the same deny.toml:

- licenses: every package's SPDX expression is satisfied by [licenses] allow (OR: one side
  allowed; AND: both; `A/B` is the legacy spelling of `A OR B`);
- bans: no crate of [bans] deny; no crate in two versions unless [bans] skip names it (and
  every skip entry is still a duplicate, so the list stays true);
- sources: every package comes from the workspace or a registry of [sources] allow-registry.

Exits non-zero and names every violation. Usage: scripts/dependency-policy.py [deny.toml]
"""

import json
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES_IO = "https://github.com/rust-lang/crates.io-index"


def metadata(targets):
    """The resolved graph of the workspace for the policy's targets, from the lock file."""
    packages, seen = {}, set()
    for target in targets or [None]:
        command = ["cargo", "metadata", "--locked", "--format-version", "1", "--all-features"]
        if target:
            command += ["--filter-platform", target]
        data = json.loads(subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        by_id = {p["id"]: p for p in data["packages"]}
        for node in data["resolve"]["nodes"]:
            if node["id"] not in seen:
                seen.add(node["id"])
                packages[node["id"]] = by_id[node["id"]]
    return list(packages.values())


def tokens(expression):
    return re.findall(r"\(|\)|[A-Za-z0-9.+\-]+", expression.replace("/", " OR "))


def satisfied(expression, allowed):
    """Whether an SPDX expression is satisfied by the allowed licences (`WITH` kept whole)."""
    items = tokens(expression)
    position = 0

    def peek():
        return items[position] if position < len(items) else None

    def take():
        nonlocal position
        position += 1
        return items[position - 1]

    def primary():
        if peek() == "(":
            take()
            value = either()
            take()  # ")"
            return value
        name = take()
        if peek() == "WITH":
            take()
            name = f"{name} WITH {take()}"
        return name in allowed

    def both():
        value = primary()
        while peek() == "AND":
            take()
            value = primary() and value
        return value

    def either():
        value = both()
        while peek() == "OR":
            take()
            value = both() or value
        return value

    return either()


def main():
    policy_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "deny.toml"
    policy = tomllib.loads(policy_path.read_text())
    packages = metadata(policy.get("graph", {}).get("targets", []))
    problems = []

    allowed = set(policy["licenses"]["allow"])
    for package in packages:
        if package["source"] is None:
            continue  # the workspace's own crates: MIT, checked by the LICENSE file itself
        expression = package.get("license")
        if not expression:
            problems.append(f"licenses: {package['name']} {package['version']} declares no licence")
        elif not satisfied(expression, allowed):
            problems.append(f"licenses: {package['name']} {package['version']} is `{expression}`, not allowed")

    bans = policy.get("bans", {})
    denied = {entry["crate"] if isinstance(entry, dict) else entry for entry in bans.get("deny", [])}
    skip = {entry["crate"] if isinstance(entry, dict) else entry for entry in bans.get("skip", [])}
    versions = defaultdict(set)
    for package in packages:
        versions[package["name"]].add(package["version"])
        if package["name"] in denied:
            problems.append(f"bans: {package['name']} is banned ({policy_path.name} [bans] deny)")
    for name, found in sorted(versions.items()):
        duplicated = len(found) > 1
        listed = any(entry == name or entry.startswith(f"{name}@") for entry in skip)
        if duplicated and not listed and bans.get("multiple-versions") == "deny":
            problems.append(f"bans: {name} in {len(found)} versions ({', '.join(sorted(found))})")
    for entry in sorted(skip):
        name = entry.split("@")[0]
        if len(versions.get(name, ())) < 2:
            problems.append(f"bans: skip entry `{entry}` is no longer a duplicate; remove it")

    registries = set(policy.get("sources", {}).get("allow-registry", [CRATES_IO]))
    for package in packages:
        source = package["source"]
        if source is None:
            continue
        kind, _, url = source.partition("+")
        if kind not in ("registry", "sparse") or url not in registries:
            problems.append(f"sources: {package['name']} {package['version']} comes from {source}")

    for problem in problems:
        print(problem, file=sys.stderr)
    third_party = sum(1 for p in packages if p["source"] is not None)
    if problems:
        print(f"dependency policy: {len(problems)} violation(s) in {third_party} crates", file=sys.stderr)
        return 1
    print(f"dependency policy: {third_party} crates: licences, bans, duplicates and sources as {policy_path.name} says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
