# Sourced by the suites that need `pgforce run` (api-fuzz, django, odata): a Python venv for the suite,
# a fresh emulator, a throwaway database and `pgforce run` syncing Account from it, with
# a `manage` token. Sets API (the server's base URL), TOKEN, WORK (a temporary folder) and
# PY (the venv's python); everything started is stopped, and the database dropped, on exit.
# Expects $here (the suite's folder, holding requirements.txt) and $root (the checkout).

bin="${PGFORCE_BIN:-$root/target/release/pgforce}"
server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [ ! -x "$bin" ]; then
  echo "error: pgforce binary $bin not found; build it with: cargo build --release -p pgforce" >&2
  exit 1
fi
source "$root/interop/venv.sh"

WORK="$(mktemp -d)"
database="pgforce_interop_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  psql "$server" -qc "drop database if exists \"$database\" with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_for() { # url, pid, log
  for _ in $(seq 1 300); do
    if "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "error: it exited; its log:" >&2; cat "$3" >&2; exit 1; fi
    sleep 0.1
  done
  echo "error: $1 never answered; log:" >&2; cat "$3" >&2; exit 1
}

psql "$server" -qc "create database \"$database\"" >/dev/null
org_port="$(free_port)"
org_tls_port="$(free_port)"
"$bin" emulator --port "$org_port" --tls-port "$org_tls_port" --cert-out "$WORK/ca.pem" --seed demo > "$WORK/emulator.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$org_port/services/data/" "${pids[-1]}" "$WORK/emulator.log"

cat > "$WORK/pgforce.toml" <<TOML
[database]
url = "${server%/*}/$database"

[security]
allowed_login_hosts = ["127.0.0.1:$org_port"]

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
"$bin" run --config "$WORK/pgforce.toml" --listen "127.0.0.1:$api_port" > "$WORK/pgforce.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$api_port/readyz" "${pids[-1]}" "$WORK/pgforce.log"
API="http://127.0.0.1:$api_port"
TOKEN="$("$bin" token --config "$WORK/pgforce.toml" create --name interop --role manage)"
