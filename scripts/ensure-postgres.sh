#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (or $DATABASE_URL), starting the
# local cluster when it is installed but stopped. Fails with a clear message otherwise.
set -euo pipefail

url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ready() { pg_isready -q -d "$url" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "error: PostgreSQL client tools (pg_isready) are not installed; install postgresql" >&2
  exit 1
fi
if ready; then
  echo "PostgreSQL is running ($url)"
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    ready && { echo "PostgreSQL is running ($url)"; exit 0; }
    sleep 1
  done
fi
echo "error: no PostgreSQL answers at $url and none could be started;" >&2
echo "       install PostgreSQL or set DATABASE_URL to a reachable server" >&2
exit 1
