# Rust: unit, store, in-process and adapter tests.
log "cargo build"
cargo build --workspace --all-targets
log "cargo test"
cargo test --workspace
