#!/usr/bin/env bash
# Runs Faye (npm `faye`, a third-party Bayeux client) against a freshly started emulator's
# Streaming API over HTTPS. Installs the pinned client into interop/cometd/node_modules on
# first use; the emulator binary comes from $PGFORCE_BIN (default: target/release/pgforce
# of this checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/interop/emulator.sh"
source "$root/interop/node.sh"

start_emulator --cometd-timeout-seconds 10

export PGFORCE_LOGIN_URL="https://localhost:$tls_port"
export NODE_EXTRA_CA_CERTS="$work/ca.pem"
cd "$here"
node test.js
