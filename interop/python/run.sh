#!/usr/bin/env bash
# Runs the simple-salesforce fidelity suite against a freshly started emulator.
# Installs the pinned client into interop/python/.venv on first use; the emulator binary
# comes from $PGFORCE_BIN (default: target/release/pgforce of this checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${PGFORCE_BIN:-$root/target/release/pgforce}"

if [ ! -x "$bin" ]; then
  echo "error: emulator binary $bin not found; build it with: cargo build --release -p pgforce" >&2
  exit 1
fi
source "$root/interop/venv.sh"

work="$(mktemp -d)"
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
http_port="$(free_port)"
tls_port="$(free_port)"
cat > "$work/schema.json" <<'JSON'
{"extend": {"Account": [{"name": "External_Id__c", "type": "string", "length": 40, "externalId": true, "unique": true}]}}
JSON

"$bin" emulator --port "$http_port" --tls-port "$tls_port" --cert-out "$work/ca.pem" \
  --schema "$work/schema.json" > "$work/emulator.log" 2>&1 &
emulator_pid=$!

for _ in $(seq 1 100); do
  if [ -s "$work/ca.pem" ] && "$PY" - "$http_port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/services/data/", timeout=1)
PY
  then break; fi
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "error: the emulator exited; its log:" >&2; cat "$work/emulator.log" >&2; exit 1
  fi
  sleep 0.1
done

export PGFORCE_LOGIN_URL="https://localhost:$tls_port"
export PGFORCE_CONTROL_URL="http://127.0.0.1:$http_port/__emulator"
export PGFORCE_CA="$work/ca.pem"
# requests lets these override a session's own `verify`; point them at the emulator's CA.
export REQUESTS_CA_BUNDLE="$work/ca.pem" CURL_CA_BUNDLE="$work/ca.pem"
cd "$here"
"$PY" -m pytest -q -p no:cacheprovider test_simple_salesforce.py
