#!/usr/bin/env bash
# Installs the project's Python tooling (cfn-lint + serverless rules, AWS SAM CLI, cargo-lambda
# with its zig, moto server) into the project-local virtualenv `.venv/`, pinned by
# requirements-dev.txt.
#
# Idempotent and fast when nothing changed: the venv keeps a stamp with the sha256 of
# requirements-dev.txt (and the interpreter version); when the stamp matches and the tools are
# present, the script only prints where they are. Safe in CI (CI=true, root, no stdin): pip never
# prompts, and concurrent runs serialise on a lock file.
#
# Environment:
#   PYTHON          interpreter used to create the venv (default: python3; needs >= 3.10)
#   ACTIVELOG_VENV  venv location (default: <repo>/.venv)
#   FORCE=1         reinstall even when the stamp matches
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ACTIVELOG_VENV:-$ROOT/.venv}"
REQUIREMENTS="$ROOT/requirements-dev.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
export SAM_CLI_TELEMETRY=0

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PYTHON" -V 2>&1) is too old: the pinned tools need Python >= 3.10"
[ -f "$REQUIREMENTS" ] || die "missing $REQUIREMENTS"

# What the stamp must equal: requirements content + interpreter, so a new Python rebuilds too.
wanted="$( { sha256sum "$REQUIREMENTS" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

tools_present() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/cfn-lint" ] && [ -x "$VENV/bin/sam" ] \
    && [ -x "$VENV/bin/cargo-lambda" ] && [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/zig" ] \
    && [ -x "$VENV/bin/schemathesis" ]
}

up_to_date() {
  [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ] && tools_present
}

install() {
  local started=$SECONDS
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
    log "creating virtualenv $VENV with $("$PYTHON" -V 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" \
      || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
  fi
  rm -f "$STAMP"
  log "installing pinned tools from requirements-dev.txt (first run: about a minute)"
  "$VENV/bin/python" -m pip install --quiet --requirement "$REQUIREMENTS"
  "$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; die "pip check failed"; }

  # cargo-lambda cross-links with zig. It looks for `zig` on PATH (else `python3 -m ziglang`);
  # expose the binary the `ziglang` wheel ships as .venv/bin/zig so it is found whenever
  # .venv/bin is on PATH, whatever `python3` resolves to. zig locates its lib/ directory
  # through the resolved executable path, so a symlink is enough.
  local zig
  zig="$("$VENV/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')"
  [ -x "$zig" ] || die "the ziglang wheel did not ship an executable zig at $zig"
  ln -sfn "$zig" "$VENV/bin/zig"

  tools_present || die "install finished but a tool is missing from $VENV/bin"
  printf '%s\n' "$wanted" > "$STAMP"
  log "installed in $((SECONDS - started)) s"
}

mkdir -p "$(dirname "$VENV")"
if up_to_date; then
  log "up to date ($VENV)"
else
  # Serialise concurrent runs (e.g. two CI steps) on one venv.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/activelog-tools-$(printf '%s' "$VENV" | sha256sum | cut -c1-12).lock"
    flock 9
  fi
  up_to_date && log "up to date ($VENV, installed by a concurrent run)" || install
fi

# Where the tools are, with their versions (fast: no network, no AWS calls).
cat >&2 <<EOF
install-tools: tools in $VENV/bin (put it first on PATH: export PATH="$VENV/bin:\$PATH")
  cfn-lint      $VENV/bin/cfn-lint ($("$VENV/bin/cfn-lint" --version 2>&1 | head -n1))
  sam           $VENV/bin/sam ($("$VENV/bin/sam" --version 2>&1 | head -n1))
  cargo-lambda  $VENV/bin/cargo-lambda ($("$VENV/bin/cargo-lambda" lambda --version 2>&1 | head -n1))
  zig           $VENV/bin/zig ($("$VENV/bin/zig" version 2>&1 | head -n1))
  moto_server   $VENV/bin/moto_server (moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'))
EOF
