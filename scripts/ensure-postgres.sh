#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (or $DATABASE_URL), starting the
# local cluster when it is installed but stopped. Fails with a clear message otherwise.
set -euo pipefail

url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# What the messages show: the URL without a password (user:password@ or password=...).
shown=$(printf '%s' "$url" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#; s#(password=)[^&[:space:]]*#\1***#g')
ready() { pg_isready -q -d "$url" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "error: PostgreSQL client tools (pg_isready) are not installed; install postgresql" >&2
  exit 1
fi
# The TLS tests need the server to offer TLS: on a local Debian cluster without it, turn it
# on with the machine's snakeoil certificate; otherwise say how.
ensure_tls() {
  local ssl cert=/etc/ssl/certs/ssl-cert-snakeoil.pem key=/etc/ssl/private/ssl-cert-snakeoil.key
  ssl=$(psql "$url" -Atc "show ssl" 2>/dev/null || echo unknown)
  [ "$ssl" = "on" ] && return 0
  if [ ! -f "$cert" ] && command -v make-ssl-cert >/dev/null 2>&1; then
    make-ssl-cert generate-default-snakeoil || true
  fi
  if [ -f "$cert" ] && [ -f "$key" ]; then
    echo "turning TLS on in PostgreSQL with the snakeoil certificate"
    psql "$url" -q -c "alter system set ssl_cert_file = '$cert'" \
      -c "alter system set ssl_key_file = '$key'" -c "alter system set ssl = on" \
      -c "select pg_reload_conf()" >/dev/null || true
    sleep 1
    ssl=$(psql "$url" -Atc "show ssl" 2>/dev/null || echo unknown)
  fi
  if [ "$ssl" != "on" ]; then
    echo "error: PostgreSQL at $shown does not offer TLS (ssl = $ssl), which the TLS tests need;" >&2
    echo "       give it a certificate and set ssl = on (Debian: the ssl-cert package's snakeoil)" >&2
    exit 1
  fi
}

if ready; then
  echo "PostgreSQL is running ($shown)"
  ensure_tls
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    ready && { echo "PostgreSQL is running ($shown)"; ensure_tls; exit 0; }
    sleep 1
  done
fi
echo "error: no PostgreSQL answers at $shown and none could be started;" >&2
echo "       install PostgreSQL or set DATABASE_URL to a reachable server" >&2
exit 1
