# python-socketio, as the Flask lobby's clients.
log "python-socketio tests"
venv=tests/python/.venv
if [ ! -x "$venv/bin/pytest" ] || [ tests/python/requirements.txt -nt "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
ROOMCAST_BIN="$repo/target/debug/roomcast" "$venv/bin/pytest" -q tests/python
