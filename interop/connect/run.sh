#!/usr/bin/env bash
# Salesforce Connect end to end: simple-salesforce, unchanged, queries external objects
# (`…__x`) in the emulator, which reads them live from pgforce's OData 4.0 service as
# Salesforce Connect does. `pgforce run` and the emulator come from ../daemon.sh; the
# service is enabled and an archive-like table published with `pgforce odata`, then an
# External Data Source pointing at it is created and synced through the emulator's control
# API. The pinned packages go into interop/connect/.venv on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/../daemon.sh"

psql "${server%/*}/$database" -q <<'SQL'
create schema archive;
create table archive.closed_case (
    sfid varchar(18) primary key,
    subject text not null,
    status varchar(40),
    priority varchar(40),
    closeddate timestamptz,
    amount numeric(12, 2)
);
insert into archive.closed_case
    select '500' || lpad(g::text, 15, '0'),
           'Case ' || g,
           case when g % 3 = 0 then 'Closed' else 'Resolved' end,
           case when g % 10 = 0 then 'High' else 'Low' end,
           timestamptz '2019-01-01 00:00:00+00' + g * interval '1 hour',
           g * 1.5
    from generate_series(1, 2500) g;
SQL
odata() { "$bin" odata --config "$WORK/pgforce.toml" --connection main "$@"; }
enabled="$(odata enable --public-url "$API")"
export ODATA_URL="$(awk '$1 == "url:" {print $2}' <<<"$enabled")"
export ODATA_USER="$(awk '$1 == "user:" {print $2}' <<<"$enabled")"
export ODATA_PASSWORD="$(awk '$1 == "password:" {print $2}' <<<"$enabled")"
odata publish archive.closed_case >/dev/null

export PGFORCE_ORG_URL="http://127.0.0.1:$org_port"
export PGFORCE_INSTANCE_URL="https://localhost:$org_tls_port" PGFORCE_CA="$WORK/ca.pem"
# requests lets these override a session's own `verify`; point them at the emulator's CA.
export REQUESTS_CA_BUNDLE="$WORK/ca.pem" CURL_CA_BUNDLE="$WORK/ca.pem"
export PGFORCE_DATABASE_URL="${server%/*}/$database"
cd "$here"
status=0
"$PY" -m pytest -q -p no:cacheprovider test_salesforce_connect.py || status=$?
if [ "$status" -ne 0 ]; then
  echo "pgforce's log:" >&2
  tail -30 "$WORK/pgforce.log" >&2
fi
exit "$status"
