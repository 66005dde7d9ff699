#!/usr/bin/env bash
# Runs the third-party Node Pub/Sub client (npm salesforce-pubsub-api-client, pinned in
# package.json / package-lock.json) against a freshly started emulator's Pub/Sub API.
# Installs it into interop/pubsub/node_modules on first use (and again when the lock file
# changes); the emulator binary comes from $PGFORCE_BIN (default: target/release/pgforce).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/emulator.sh"
source "$root/interop/node.sh"

pubsub_port="$(free_port)"
start_emulator --pubsub-port "$pubsub_port" --pubsub-keepalive-seconds 1

export PGFORCE_LOGIN_URL="https://localhost:$tls_port"
export PGFORCE_CONTROL_URL="http://127.0.0.1:$http_port/__emulator"
export PGFORCE_PUBSUB="localhost:$pubsub_port"
export PGFORCE_CA="$work/ca.pem"
export PGFORCE_PROTO="$root/crates/pubsub-proto/proto/pubsub.proto"
# Node's fetch (REST calls, login) trusts the emulator's CA through this.
export NODE_EXTRA_CA_CERTS="$work/ca.pem"
cd "$here"
node test.mjs
