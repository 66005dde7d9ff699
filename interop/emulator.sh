# Sourced by the interop suites (after setting $here and $root): the emulator binary
# ($PGFORCE_BIN, default target/release/pgforce of this checkout), a scratch folder $work
# removed on exit with the emulator, free_port, and start_emulator ARGS..., which starts
# `pgforce emulator` on free HTTP and HTTPS ports ($http_port, $tls_port; its CA in
# $work/ca.pem) with ARGS added, and waits until it answers.
bin="${PGFORCE_BIN:-$root/target/release/pgforce}"
if [ ! -x "$bin" ]; then
  echo "error: emulator binary $bin not found; build it with: cargo build --release -p pgforce" >&2
  exit 1
fi

work="$(mktemp -d)"
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

start_emulator() {
  http_port="$(free_port)"
  tls_port="$(free_port)"
  "$bin" emulator --port "$http_port" --tls-port "$tls_port" --cert-out "$work/ca.pem" "$@" \
    > "$work/emulator.log" 2>&1 &
  emulator_pid=$!
  for _ in $(seq 1 100); do
    if [ -s "$work/ca.pem" ] && python3 - "$http_port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/services/data/", timeout=1)
PY
    then return 0; fi
    if ! kill -0 "$emulator_pid" 2>/dev/null; then
      echo "error: the emulator exited; its log:" >&2; cat "$work/emulator.log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "error: the emulator never answered; its log:" >&2; cat "$work/emulator.log" >&2; exit 1
}
