# End to end with the official Socket.IO clients (node's test runner).
log "end-to-end tests"
(
    cd tests/e2e
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
)
ROOMCAST_BIN="$repo/target/debug/roomcast" node --test --test-concurrency=1 tests/e2e/
