# Deploy: the load balancer configs (haproxy -c, nginx -t), docker compose, the
# Dockerfile (its builder stage replayed with cargo check; the first run compiles the
# dependencies into target/image-check), the Helm chart (Helm's engine + Kubernetes
# schemas), deploy/local-cluster, the user docs, and the official clients through real
# HAProxy and nginx.
log "deploy checks"
deploy_missing=()
command -v haproxy >/dev/null || deploy_missing+=(haproxy)
command -v nginx >/dev/null || deploy_missing+=(nginx)
command -v docker-compose >/dev/null || deploy_missing+=(docker-compose)
command -v envsubst >/dev/null || deploy_missing+=(gettext-base)
command -v curl >/dev/null || deploy_missing+=(curl)
if [ ${#deploy_missing[@]} -gt 0 ]; then
    log "installing ${deploy_missing[*]}"
    # Debian starts nginx and haproxy as system services on install; the tests run
    # their own unprivileged instances, so keep the services from starting at all.
    deploy_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        deploy_policy=1
    fi
    apt_install "${deploy_missing[@]}"
    [ -z "$deploy_policy" ] || as_root rm -f /usr/sbin/policy-rc.d
fi
# The load balancer test imports the e2e harness and its npm clients.
(
    cd tests/e2e
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
)
deploy_venv=tests/deploy/.venv
if [ ! -x "$deploy_venv/bin/pytest" ] || [ tests/deploy/requirements.txt -nt "$deploy_venv/bin/pytest" ]; then
    python3 -m venv "$deploy_venv"
    "$deploy_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt
    touch "$deploy_venv/bin/pytest"
fi
ROOMCAST_BIN="${ROOMCAST_BIN:-$repo/target/debug/roomcast}" "$deploy_venv/bin/pytest" -q tests/deploy
ROOMCAST_BIN="${ROOMCAST_BIN:-$repo/target/debug/roomcast}" node --test --test-concurrency=1 tests/deploy/lb.test.mjs
