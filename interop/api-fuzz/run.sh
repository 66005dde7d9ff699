#!/usr/bin/env bash
# Fuzzes the management API with schemathesis, from its own OpenAPI document: every
# operation with generated valid and invalid input, as a `manage` token, against
# `pgforce run` on a throwaway database and a fresh emulator (../daemon.sh). Fails on any
# 5xx, and on any answer whose status, content type or body the document does not allow.
# The pinned fuzzer goes into interop/api-fuzz/.venv on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
examples="${PGFORCE_FUZZ_EXAMPLES:-25}"
source "$here/../daemon.sh"

cd "$WORK"
status=0
"$here/.venv/bin/schemathesis" run "$API/api/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 1 --workers 1 --no-color \
  --generation-database none --suppress-health-check all || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems; pgforce's log:" >&2
  tail -50 "$WORK/pgforce.log" >&2
fi
exit "$status"
