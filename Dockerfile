# syntax=docker/dockerfile:1
# Roomcast node image: `docker build -t roomcast .`
# Build stage on the toolchain the workspace asks for (rust-version in Cargo.toml).
ARG RUST_VERSION=1.94
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# Dependencies first, against placeholder sources: this layer is rebuilt only when a
# manifest or the lock file changes, not on every source edit.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY node/Cargo.toml node/Cargo.toml
COPY adapter/Cargo.toml adapter/Cargo.toml
# Cargo loads every workspace member's manifest even to build one package; the load
# generator's and the test kit's sources are not needed for the image.
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY testkit/Cargo.toml testkit/Cargo.toml
RUN mkdir -p node/src adapter/src \
    && echo 'fn main() {}' > node/src/main.rs \
    && touch node/src/lib.rs adapter/src/lib.rs \
    && cargo build --release --locked -p roomcast-node \
    && rm -rf node/src adapter/src

# The real sources; migrations are embedded in the binary at compile time.
COPY adapter adapter
COPY node node
COPY migrations migrations
# Newer mtimes than the placeholder build, so cargo rebuilds the workspace crates.
RUN touch node/src/main.rs node/src/lib.rs adapter/src/lib.rs \
    && cargo build --release --locked -p roomcast-node \
    && install -m 0755 target/release/roomcast /usr/local/bin/roomcast

FROM debian:bookworm-slim AS runtime
# ca-certificates: rediss:// and Postgres TLS, and OTLP over https.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 roomcast \
    && useradd --system --uid 10001 --gid roomcast --home-dir /var/lib/roomcast --create-home roomcast
COPY --from=builder /usr/local/bin/roomcast /usr/local/bin/roomcast

# Listen on all interfaces in a container; ops endpoints on their own port so that
# they need not be exposed through the load balancer.
ENV ROOMCAST_LISTEN=0.0.0.0:3000 \
    ROOMCAST_OPS_LISTEN=0.0.0.0:9090 \
    ROOMCAST_LOG_FORMAT=json
USER 10001:10001
# The embedded SQLite default (sqlite://roomcast.db) lands in the user's writable home.
WORKDIR /var/lib/roomcast
EXPOSE 3000 9090
# No curl in the slim image: bash's /dev/tcp speaks just enough HTTP for /livez.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /livez HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["roomcast"]
CMD ["serve"]
