#!/usr/bin/env bash
# `sam build` for every function in template.yaml, with cargo-lambda (and the zig it brings) from the
# project venv. Each function is built by `cargo lambda build --release [--arm64] --bin <Binary>` in
# its crate folder (the function's CodeUri); every build shares the workspace's target/ directory,
# so dependencies compile once. Artifacts land in .aws-sam/build/<LogicalId>/bootstrap.
#
# Architecture: arm64 (the template's default) needs the Rust standard library for
# aarch64-unknown-linux-gnu. When it is not installed and `rustup target add` cannot fetch it, the
# script builds x86_64 instead, says so loudly, and the stack must then be deployed with
# `--parameter-overrides Architecture=x86_64` (the template's `Architecture` parameter): an x86_64
# binary on an arm64 function fails at its first invocation.
#
# A full release build of all functions takes several minutes on 2 cores.
#
# Usage: scripts/sam-build.sh [--arch arm64|x86_64] [--dry-run] [-- extra sam build args...]
#   --arch      force an architecture (default: arm64, falling back to x86_64 as above)
#   --dry-run   do every check, print the sam build command, build nothing
#   extra args  passed to `sam build`, e.g. `-- CreateActivityFunction` to build one function
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ACTIVELOG_VENV:-$ROOT/.venv}"
ARM_TRIPLE=aarch64-unknown-linux-gnu

arch="${ACTIVELOG_ARCH:-}"
dry_run=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || { echo "sam-build: --arch needs a value" >&2; exit 2; }; arch="$2"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --) shift; extra+=("$@"); break ;;
    *) extra+=("$1"); shift ;;
  esac
done
case "$arch" in
  ""|arm64|x86_64) ;;
  *) echo "sam-build: unknown architecture '$arch' (arm64 or x86_64)" >&2; exit 2 ;;
esac
for a in "${extra[@]+"${extra[@]}"}"; do
  case "$a" in
    --parameter-overrides*) echo "sam-build: pass the architecture with --arch; other parameters belong to sam deploy" >&2; exit 2 ;;
  esac
done

bash "$ROOT/scripts/install-tools.sh"
export PATH="$VENV/bin:$PATH"   # cargo-lambda, zig, sam
export SAM_CLI_TELEMETRY=0

command -v cargo >/dev/null 2>&1 || { echo "sam-build: cargo not found (install Rust with rustup)" >&2; exit 1; }
command -v rustc >/dev/null 2>&1 || { echo "sam-build: rustc not found" >&2; exit 1; }

# The aarch64 standard library is installed when its target libdir holds libstd.
has_arm_std() {
  local libdir
  libdir="$(cd "$ROOT" && rustc --print target-libdir --target "$ARM_TRIPLE" 2>/dev/null)" || return 1
  compgen -G "$libdir/libstd-*.rlib" >/dev/null
}

fell_back=0
if [ -z "$arch" ] || [ "$arch" = arm64 ]; then
  if ! has_arm_std; then
    echo "sam-build: the $ARM_TRIPLE standard library is missing; trying rustup target add" >&2
    if command -v rustup >/dev/null 2>&1; then
      (cd "$ROOT" && timeout 300 rustup target add "$ARM_TRIPLE") >&2 || true
    fi
  fi
  if has_arm_std; then
    arch=arm64
  elif [ "$arch" = arm64 ]; then
    echo "sam-build: --arch arm64 requested but the $ARM_TRIPLE standard library cannot be installed" >&2
    exit 1
  else
    arch=x86_64
    fell_back=1
  fi
fi

banner() {
  cat >&2 <<EOF
################################################################################################
##  sam-build: BUILDING x86_64, NOT arm64.
##  The aarch64-unknown-linux-gnu Rust standard library is not installed and could not be added
##  (rustup target add aarch64-unknown-linux-gnu). These artifacts only run on x86_64 functions:
##  deploy them with   sam deploy --parameter-overrides Architecture=x86_64 ...
################################################################################################
EOF
}
[ "$fell_back" = 1 ] && banner

cmd=(sam build --template "$ROOT/template.yaml" --parameter-overrides "Architecture=$arch")
cmd+=("${extra[@]+"${extra[@]}"}")

echo "sam-build: architecture $arch; cargo-lambda $("$VENV/bin/cargo-lambda" lambda --version | awk '{print $2}'), zig $(zig version)" >&2
echo "sam-build: (cd $ROOT && ${cmd[*]})" >&2
if [ "$dry_run" = 1 ]; then
  echo "sam-build: --dry-run, nothing built" >&2
  exit 0
fi

started=$SECONDS
(cd "$ROOT" && "${cmd[@]}" </dev/null)
echo "$arch" > "$ROOT/.aws-sam/build-architecture"
echo "sam-build: built $arch artifacts in .aws-sam/build in $((SECONDS - started)) s" >&2
if [ "$fell_back" = 1 ]; then
  banner
else
  echo "sam-build: deploy with: sam deploy --guided   (Architecture=$arch)" >&2
fi
