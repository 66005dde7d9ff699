#!/usr/bin/env bash
# Runs django-heroku-connect, unchanged, against pgforce's management API: its API client
# reads HEROKU_CONNECT_API_ENDPOINT and a bearer token from settings, as it does with
# Heroku. `pgforce run` comes from ../daemon.sh; the pinned packages go into
# interop/django/.venv on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/../daemon.sh"

export HEROKU_CONNECT_API_ENDPOINT="$API/api/v3"
export HEROKU_AUTH_TOKEN="$TOKEN"
export HEROKU_APP_NAME="main"
export DJANGO_SETTINGS_MODULE="settings"
cd "$here"
status=0
"$PY" -m pytest -q -p no:cacheprovider test_django_heroku_connect.py || status=$?
if [ "$status" -ne 0 ]; then
  echo "pgforce's log:" >&2
  tail -30 "$WORK/pgforce.log" >&2
fi
exit "$status"
