# Sourced by the Node interop suites (after setting $here): checks for node and npm, and
# installs the suite's pinned packages (package-lock.json) into $here/node_modules on first
# use and again when the lock file changes.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "error: node and npm are needed for the $(basename "$here") interop suite (Node 20 or later)" >&2
  exit 1
fi
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.pgforce-lock" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$here/node_modules/.pgforce-lock"
fi
