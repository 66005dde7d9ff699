#!/usr/bin/env bash
# Fuzzes the management API with schemathesis, from its own OpenAPI document: every
# operation with generated valid and invalid input, as a `manage` token, against
# `pgforce run` on a throwaway database and a fresh emulator. Fails on any 5xx, any
# answer whose status, content type or body the document does not allow.
# Installs the pinned fuzzer into interop/api-fuzz/.venv on first use; pgforce comes from
# $PGFORCE_BIN (default: target/release/pgforce of this checkout). Postgres is the one
# DATABASE_URL names (default: the local server, as the tests use).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${PGFORCE_BIN:-$root/target/release/pgforce}"
venv="$here/.venv"
server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
examples="${PGFORCE_FUZZ_EXAMPLES:-25}"

if [ ! -x "$bin" ]; then
  echo "error: pgforce binary $bin not found; build it with: cargo build --release -p pgforce" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

work="$(mktemp -d)"
database="pgforce_fuzz_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  psql "$server" -qc "drop database if exists \"$database\" with (force)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_for() { # url, pid, log
  for _ in $(seq 1 300); do
    if "$venv/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "error: it exited; its log:" >&2; cat "$3" >&2; exit 1; fi
    sleep 0.1
  done
  echo "error: $1 never answered; log:" >&2; cat "$3" >&2; exit 1
}

psql "$server" -qc "create database \"$database\"" >/dev/null
database_url="${server%/*}/$database"

org_port="$(free_port)"
"$bin" emulator --port "$org_port" --tls-port 0 --cert-out "$work/ca.pem" --seed demo > "$work/emulator.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$org_port/services/data/" "${pids[-1]}" "$work/emulator.log"

cat > "$work/pgforce.toml" <<TOML
[database]
url = "$database_url"

[[connection]]
name = "main"
login_url = "http://127.0.0.1:$org_port"
auth = "password"
username = "admin@example.com"
password = "pgforce"
client_id = "pgforce"
client_secret = "pgforce"

[[connection.mapping]]
object = "Account"
access = "read_write"
fields = ["Name", "Industry"]
polling_seconds = 1
TOML

api_port="$(free_port)"
"$bin" run --config "$work/pgforce.toml" --listen "127.0.0.1:$api_port" > "$work/pgforce.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$api_port/readyz" "${pids[-1]}" "$work/pgforce.log"
token="$("$bin" token --config "$work/pgforce.toml" create --name fuzz --role manage)"

cd "$work"
status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$api_port/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 1 --workers 1 --no-color \
  --generation-database none --suppress-health-check all || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems; pgforce's log:" >&2
  tail -50 "$work/pgforce.log" >&2
fi
exit "$status"
