#!/usr/bin/env bash
# Runs the third-party Node Pub/Sub client (npm salesforce-pubsub-api-client, pinned in
# package.json / package-lock.json) against a freshly started emulator's Pub/Sub API.
# Installs it into interop/pubsub/node_modules on first use (and again when the lock file
# changes); the emulator binary comes from $PGFORCE_BIN (default: target/release/pgforce).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${PGFORCE_BIN:-$root/target/release/pgforce}"

if [ ! -x "$bin" ]; then
  echo "error: emulator binary $bin not found; build it with: cargo build --release -p pgforce" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "error: node and npm are needed (Node 20 or later)" >&2
  exit 1
fi
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.pgforce-lock" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$here/node_modules/.pgforce-lock"
fi

work="$(mktemp -d)"
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }
http_port="$(free_port)"
tls_port="$(free_port)"
pubsub_port="$(free_port)"

"$bin" emulator --port "$http_port" --tls-port "$tls_port" --pubsub-port "$pubsub_port" \
  --pubsub-keepalive-seconds 1 --cert-out "$work/ca.pem" > "$work/emulator.log" 2>&1 &
emulator_pid=$!

ready=""
for _ in $(seq 1 100); do
  if [ -s "$work/ca.pem" ] && node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
      "http://127.0.0.1:$http_port/services/data/" 2>/dev/null; then ready=1; break; fi
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "error: the emulator exited; its log:" >&2; cat "$work/emulator.log" >&2; exit 1
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then echo "error: the emulator never answered; its log:" >&2; cat "$work/emulator.log" >&2; exit 1; fi

export PGFORCE_LOGIN_URL="https://localhost:$tls_port"
export PGFORCE_CONTROL_URL="http://127.0.0.1:$http_port/__emulator"
export PGFORCE_PUBSUB="localhost:$pubsub_port"
export PGFORCE_CA="$work/ca.pem"
export PGFORCE_PROTO="$root/crates/pubsub-proto/proto/pubsub.proto"
# Node's fetch (REST calls, login) trusts the emulator's CA through this.
export NODE_EXTRA_CA_CERTS="$work/ca.pem"
cd "$here"
node test.mjs
