# End to end with the official Socket.IO clients (node's test runner).
log "end-to-end tests"
# The test clients, and the example worker the request tests run.
for dir in tests/e2e examples/worker; do
    (
        cd "$dir"
        if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
            npm ci --no-audit --no-fund --loglevel=error
        fi
    )
done
ROOMCAST_BIN="$repo/target/debug/roomcast" node --test --test-concurrency=1 tests/e2e/
