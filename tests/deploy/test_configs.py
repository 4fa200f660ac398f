"""Static checks of the shipped configs with the real tools: haproxy -c, nginx -t,
docker-compose config; and consistency between the files (metric names, ports,
mounted paths, the Dockerfile's stages)."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, render_template, run_unprivileged

HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "nginx.conf.template"


def haproxy_env(**over):
    env = {"ROOMCAST_LB_BIND": "127.0.0.1:18080", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for i in (1, 2, 3):
        env[f"ROOMCAST_NODE{i}_ADDR"] = f"127.0.0.1:{3000 + i}"
        env[f"ROOMCAST_NODE{i}_OPS_PORT"] = str(9090 + i)
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


def test_haproxy_config_is_valid(scratch):
    r = run_unprivileged(["haproxy", "-c", "-f", str(HAPROXY_CFG)], env=haproxy_env(), cwd=scratch)
    assert r.returncode == 0, r.stdout + r.stderr


def test_haproxy_config_requires_its_backends(scratch):
    r = run_unprivileged(["haproxy", "-c", "-f", str(HAPROXY_CFG)], env=haproxy_env(ROOMCAST_NODE2_ADDR=None), cwd=scratch)
    assert r.returncode != 0


def test_haproxy_stickiness_and_timeouts():
    cfg = HAPROXY_CFG.read_text()
    assert re.search(r"^\s*cookie SERVERID insert indirect nocache", cfg, re.M)
    assert len(re.findall(r"^\s*server node\d .* cookie node\d check port", cfg, re.M)) == 3
    assert re.search(r"http-check send meth GET uri /readyz", cfg)
    seconds = {k: int(v) for k, v in re.findall(r"^\s*timeout (client|server) (\d+)s", cfg, re.M)}
    tunnel = re.search(r"^\s*timeout tunnel (\d+)h", cfg, re.M)
    # Longer than pingInterval + pingTimeout (25 s + 20 s), or healthy polls are cut.
    assert seconds["client"] > 45 and seconds["server"] > 45
    assert tunnel and int(tunnel.group(1)) >= 1


def render_nginx(run_dir, **over):
    values = {"NGINX_RUN_DIR": str(run_dir), "ROOMCAST_LB_LISTEN": "127.0.0.1:18081"}
    for i in (1, 2, 3):
        values[f"ROOMCAST_NODE{i}_ADDR"] = f"127.0.0.1:{3000 + i}"
    values.update(over)
    conf = run_dir / "nginx.conf"
    conf.write_text(render_template(NGINX_TEMPLATE.read_text(), values))
    return conf


def test_nginx_config_is_valid(scratch):
    conf = render_nginx(scratch)
    r = run_unprivileged(["nginx", "-t", "-p", str(scratch), "-e", str(scratch / "error.log"), "-c", str(conf)])
    assert r.returncode == 0, r.stderr
    text = conf.read_text()
    assert "hash $remote_addr consistent;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert int(re.search(r"proxy_read_timeout (\d+)s", text).group(1)) > 45


def test_nginx_rejects_a_broken_render(scratch):
    conf = render_nginx(scratch, ROOMCAST_NODE3_ADDR="")
    r = run_unprivileged(["nginx", "-t", "-p", str(scratch), "-e", str(scratch / "error.log"), "-c", str(conf)])
    assert r.returncode != 0


def test_nginx_template_placeholders_are_filled():
    with pytest.raises(AssertionError, match="NGINX_RUN_DIR"):
        render_template(NGINX_TEMPLATE.read_text(), {})


# --- docker compose and the Dockerfile --------------------------------------------------

def test_compose_validates():
    r = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_compose_services(compose):
    s = compose["services"]
    assert {"redis", "postgres", "migrate", "node1", "node2", "node3", "lb", "prometheus", "grafana", "otel-collector"} <= set(s)
    assert "healthcheck" in s["postgres"] and "healthcheck" in s["redis"]
    assert s["migrate"]["command"] == ["migrate"]
    assert s["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for i in (1, 2, 3):
        n = s[f"node{i}"]
        assert n["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = n["environment"]
        assert env["ROOMCAST_NODE_ID"] == f"node{i}"
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        # docker's SIGKILL must come after the node's drain deadline.
        assert int(n["stop_grace_period"].rstrip("s")) > int(env["ROOMCAST_SHUTDOWN_TIMEOUT"].rstrip("s"))
        lb = s["lb"]["environment"]
        assert lb[f"ROOMCAST_NODE{i}_ADDR"] == f"node{i}:{env['ROOMCAST_LISTEN'].rsplit(':', 1)[1]}"
        assert lb[f"ROOMCAST_NODE{i}_OPS_PORT"] == env["ROOMCAST_OPS_LISTEN"].rsplit(":", 1)[1]
    # Every mounted config exists in the repository.
    for svc in s.values():
        for vol in svc.get("volumes", []):
            src = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
            if src.startswith("/") or src.startswith("."):
                assert (REPO / src).exists(), src


def test_compose_nodes_trust_exactly_the_balancer(compose):
    # Client addresses (login limits, session guard, audit lines) come from the
    # balancer's X-Forwarded-For only: every node trusts the lb's fixed address and
    # nothing wider, and the shipped HAProxy config writes the header.
    import ipaddress
    s = compose["services"]
    lb_ip = s["lb"]["networks"]["roomcast"]["ipv4_address"]
    subnet = compose["networks"]["roomcast"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(lb_ip) in ipaddress.ip_network(subnet)
    for i in (1, 2, 3):
        assert s[f"node{i}"]["environment"]["ROOMCAST_TRUSTED_PROXIES"] == f"{lb_ip}/32"
    assert re.search(r"^\s*option forwardfor\b", HAPROXY_CFG.read_text(), re.M)


def test_compose_haproxy_env_passes_haproxy_check(compose, scratch):
    # The compose file's own LB environment, with names resolving only inside docker:
    # haproxy -c still accepts it (servers start unresolved, init-addr none).
    env = dict(compose["services"]["lb"]["environment"])
    env["ROOMCAST_LB_BIND"] = "127.0.0.1:18082"
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    r = run_unprivileged(["haproxy", "-c", "-f", str(HAPROXY_CFG)], env=env, cwd=scratch)
    assert r.returncode == 0, r.stderr


def dockerfile_instructions():
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_shape():
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2
    assert re.match(r"rust:\$\{RUST_VERSION\}-bookworm AS builder", froms[0])
    assert froms[1].startswith("debian:bookworm-slim")
    rust_version = re.search(r'^rust-version = "([\d.]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)
    assert ("ARG", f"RUST_VERSION={rust_version}") in ins
    final = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][1]:]
    users = [rest for word, rest in final if word == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("ENTRYPOINT", '["roomcast"]') in final
    assert any(w == "EXPOSE" for w, _ in final) and any(w == "HEALTHCHECK" for w, _ in final)
    assert any(w == "RUN" and "ca-certificates" in r for w, r in final)
    # The dependency layer builds before the sources are copied in.
    builds = [i for i, (w, r) in enumerate(ins) if w == "RUN" and "cargo build" in r]
    copy_src = [i for i, (w, r) in enumerate(ins) if w == "COPY" and r.startswith("node ")]
    assert len(builds) == 2 and builds[0] < copy_src[0] < builds[1]
    # That each COPY finds its files in the build context: test_image.py.


# --- observability configs ------------------------------------------------------------

def defined_metric_names():
    """Metric names the node and adapter register (prefix roomcast_)."""
    names = set()
    for path in list((REPO / "node" / "src").rglob("*.rs")) + list((REPO / "adapter" / "src").rglob("*.rs")):
        text = path.read_text()
        names |= set(re.findall(r'(?:gauge|counter|histogram)\(\s*"([a-z_]+)"', text))
        names |= set(re.findall(r'(?:IntCounter|IntGauge|Counter|Gauge|Histogram|IntCounterVec|IntGaugeVec|HistogramVec|CounterVec|GaugeVec)::new\(\s*"([a-z_]+)"', text))
        names |= set(re.findall(r'(?:Histogram)?Opts::new\(\s*"([a-z_]+)"', text))
    return {f"roomcast_{n}" for n in names}


def dashboard_metric_names():
    dash = json.loads((REPO / "deploy" / "grafana" / "roomcast-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\b(roomcast_[a-z_]+)", e))
    return dash, names


def test_dashboard_uses_only_real_metrics():
    defined = defined_metric_names()
    assert {"roomcast_connections", "roomcast_handshakes_total", "roomcast_adapter_messages_total"} <= defined
    dash, used = dashboard_metric_names()
    base = lambda n: re.sub(r"_(bucket|count|sum)$", "", n)
    unknown = {n for n in used if n not in defined and base(n) not in defined}
    assert not unknown, f"dashboard charts metrics no code defines: {unknown}"
    for wanted in ("roomcast_connections", "roomcast_handshakes_total", "roomcast_events_in_total",
                   "roomcast_events_out_total", "roomcast_errors_total", "roomcast_adapter_messages_total",
                   "roomcast_swept_nodes_total", "roomcast_request_duration_seconds_bucket",
                   "roomcast_request_timeouts_total"):
        assert wanted in used, wanted
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "instance"}


def test_prometheus_scrapes_the_compose_nodes(compose):
    prom = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = prom["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = job["static_configs"][0]["targets"]
    expected = []
    for i in (1, 2, 3):
        ops = compose["services"][f"node{i}"]["environment"]["ROOMCAST_OPS_LISTEN"].rsplit(":", 1)[1]
        expected.append(f"node{i}:{ops}")
    assert targets == expected
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr


def test_otel_collector_pipelines_are_wired(compose):
    cfg = yaml.safe_load((REPO / "deploy" / "otel-collector.yaml").read_text())
    otlp = cfg["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"].endswith(":4317") and otlp["http"]["endpoint"].endswith(":4318")
    assert "debug" in cfg["exporters"]
    pipelines = cfg["service"]["pipelines"]
    assert "traces" in pipelines
    for p in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in p.get(kind, []):
                assert name in cfg[kind], f"{name} is not defined under {kind}"
    for ext in cfg["service"].get("extensions", []):
        assert ext in cfg["extensions"]
    # The nodes export OTLP/HTTP: their endpoint reaches the HTTP receiver's port.
    endpoint = compose["services"]["node1"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint.rsplit(":", 1)[1] == otlp["http"]["endpoint"].rsplit(":", 1)[1]
    mounts = compose["services"]["otel-collector"]["volumes"]
    assert any("otel-collector.yaml" in (m["source"] if isinstance(m, dict) else m) for m in mounts)
