#!/usr/bin/env bash
# Runs the simple-salesforce fidelity suite against a freshly started emulator.
# Installs the pinned client into interop/python/.venv on first use; the emulator binary
# comes from $PGFORCE_BIN (default: target/release/pgforce of this checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/emulator.sh"
source "$root/interop/venv.sh"

cat > "$work/schema.json" <<'JSON'
{"extend": {"Account": [{"name": "External_Id__c", "type": "string", "length": 40, "externalId": true, "unique": true}]}}
JSON
start_emulator --schema "$work/schema.json"

export PGFORCE_LOGIN_URL="https://localhost:$tls_port"
export PGFORCE_CONTROL_URL="http://127.0.0.1:$http_port/__emulator"
export PGFORCE_CA="$work/ca.pem"
# requests lets these override a session's own `verify`; point them at the emulator's CA.
export REQUESTS_CA_BUNDLE="$work/ca.pem" CURL_CA_BUNDLE="$work/ca.pem"
cd "$here"
"$PY" -m pytest -q -p no:cacheprovider test_simple_salesforce.py
