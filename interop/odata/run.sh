#!/usr/bin/env bash
# Runs python-odata, an independent OData 4.0 client from PyPI, unchanged, against
# pgforce's OData service: `pgforce run` comes from ../daemon.sh; the service is enabled
# and a synced table and a 4,500-row view published with `pgforce odata`; the pinned
# packages go into interop/odata/.venv on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/../daemon.sh"

psql "${server%/*}/$database" -q <<'SQL'
create schema reports;
create view reports.orders as
    select g as id, 'order ' || g as label, g % 7 as bucket from generate_series(1, 4500) g;
SQL
odata() { "$bin" odata --config "$WORK/pgforce.toml" --connection main "$@"; }
enabled="$(odata enable --public-url "$API")"
export ODATA_URL="$(awk '$1 == "url:" {print $2}' <<<"$enabled")"
export ODATA_USER="$(awk '$1 == "user:" {print $2}' <<<"$enabled")"
export ODATA_PASSWORD="$(awk '$1 == "password:" {print $2}' <<<"$enabled")"
odata publish reports.orders >/dev/null
# Wait until the synced table is loaded before publishing it.
for _ in $(seq 1 300); do
  loaded="$(psql "${server%/*}/$database" -tAc "select count(*) from salesforce.account where sfid is not null" 2>/dev/null || echo 0)"
  [ "${loaded:-0}" -gt 0 ] && break
  sleep 0.1
done
odata publish salesforce.account >/dev/null

status=0
"$PY" "$here/test_python_odata.py" || status=$?
if [ "$status" -ne 0 ]; then
  echo "pgforce's log:" >&2
  tail -30 "$WORK/pgforce.log" >&2
fi
exit "$status"
