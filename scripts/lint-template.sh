#!/usr/bin/env bash
# Lints and validates the SAM templates (template.yaml, and template-amazon-mq.yaml and
# template-msk.yaml for the consumers behind Amazon MQ and Amazon MSK) without AWS: cfn-lint with the cfn-lint-serverless rules, then
# `sam validate --lint`. Both must be clean (exit non-zero otherwise). Suppressed findings are
# justified next to their `Metadata: cfn-lint: config: ignore_checks` in the template.
#
# Offline by construction: `sam validate --lint` only runs cfn-lint in-process (plain
# `sam validate`, without --lint, would create an IAM client to resolve managed policy names, so it
# is not used). A region is passed explicitly and credentials/IMDS lookups are disabled so nothing
# waits on the network. SAM CLI's weekly "newer version" check goes to PyPI with a 5 s timeout at
# most; telemetry is off.
#
# Usage: scripts/lint-template.sh [template ...]   (default: all three templates)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -gt 0 ]; then
  TEMPLATES=("$@")
else
  TEMPLATES=("$ROOT/template.yaml" "$ROOT/template-amazon-mq.yaml" "$ROOT/template-msk.yaml")
fi
VENV="${ACTIVELOG_VENV:-$ROOT/.venv}"

# Run on its own, it installs its tools; under scripts/test.sh they are installed already.
[ "${ACTIVELOG_TOOLS_INSTALLED:-}" = 1 ] || bash "$ROOT/scripts/install-tools.sh"

export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
export AWS_EC2_METADATA_DISABLED=true
# Neither tool needs credentials; dummy ones keep any SDK client from probing credential sources.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-lint}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-lint}"

status=0

for TEMPLATE in "${TEMPLATES[@]}"; do
  echo "== cfn-lint $(basename "$TEMPLATE") (+ cfn-lint-serverless rules)"
  if "$VENV/bin/cfn-lint" --append-rules cfn_lint_serverless.rules -- "$TEMPLATE"; then
    echo "cfn-lint: clean"
  else
    echo "cfn-lint: FAILED" >&2
    status=1
  fi

  echo "== sam validate --lint $(basename "$TEMPLATE")"
  if timeout 300 "$VENV/bin/sam" validate --lint --region "$AWS_DEFAULT_REGION" --template "$TEMPLATE" </dev/null; then
    echo "sam validate --lint: clean"
  else
    echo "sam validate --lint: FAILED" >&2
    status=1
  fi
done

exit "$status"
