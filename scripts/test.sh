#!/usr/bin/env bash
# The test command from README.md: the Rust workspace's tests, then the third-party
# client suites against the emulator, then schemathesis fuzzing the management API, then
# django-heroku-connect and python-odata against `pgforce run`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace
cargo build --release -p pgforce
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/python/run.sh
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/cometd/run.sh
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/pubsub/run.sh
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/api-fuzz/run.sh
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/django/run.sh
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/odata/run.sh
PGFORCE_BIN="$PWD/target/release/pgforce" bash interop/connect/run.sh
