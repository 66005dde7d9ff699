# Sourced by the interop suites: the suite's own Python venv in $here/.venv, with its
# pinned requirements.txt installed on first use (and again when they change). Sets PY.
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
stamp="$here/.venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  "$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
PY="$here/.venv/bin/python"
