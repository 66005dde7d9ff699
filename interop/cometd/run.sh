#!/usr/bin/env bash
# Runs Faye (npm `faye`, a third-party Bayeux client) against a freshly started emulator's
# Streaming API over HTTPS. Installs the pinned client into interop/cometd/node_modules on
# first use; the emulator binary comes from $PGFORCE_BIN (default: target/release/pgforce
# of this checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${PGFORCE_BIN:-$root/target/release/pgforce}"

if [ ! -x "$bin" ]; then
  echo "error: emulator binary $bin not found; build it with: cargo build --release -p pgforce" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "error: node and npm are needed for the CometD interop suite" >&2
  exit 1
fi
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

work="$(mktemp -d)"
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
http_port="$(free_port)"
tls_port="$(free_port)"

"$bin" emulator --port "$http_port" --tls-port "$tls_port" --cert-out "$work/ca.pem" \
  --cometd-timeout-seconds 10 > "$work/emulator.log" 2>&1 &
emulator_pid=$!

for _ in $(seq 1 100); do
  if [ -s "$work/ca.pem" ] && node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' \
    "http://127.0.0.1:$http_port/services/data/" 2>/dev/null; then break; fi
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "error: the emulator exited; its log:" >&2; cat "$work/emulator.log" >&2; exit 1
  fi
  sleep 0.1
done

export PGFORCE_LOGIN_URL="https://localhost:$tls_port"
export NODE_EXTRA_CA_CERTS="$work/ca.pem"
cd "$here"
node test.js
