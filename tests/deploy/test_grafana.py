"""Grafana in docker compose: its provisioning files parse and point at files and
services that exist, and the shipped dashboard queries only metrics and labels a
running node exports (read from a real node's /metrics, not from the sources)."""

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import pytest
import yaml

from conftest import BIN, REPO, free_ports

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "roomcast-dashboard.json"
# Labels Prometheus itself adds to every scraped series (node: the compose relabel).
TARGET_LABELS = {"instance", "job", "node"}


def mounts(service):
    """(source path in the repository, target path in the container) of each bind mount."""
    out = []
    for vol in service.get("volumes", []):
        if isinstance(vol, dict):
            out.append((vol["source"], vol["target"]))
        else:
            src, dst = vol.split(":")[:2]
            out.append((src, dst))
    return out


def test_compose_ships_grafana_provisioned_from_the_repository(compose):
    grafana = compose["services"]["grafana"]
    assert "prometheus" in grafana["depends_on"]
    by_target = {dst: src for src, dst in mounts(grafana)}
    provisioning = by_target["/etc/grafana/provisioning"]
    assert os.path.samefile(provisioning, GRAFANA / "provisioning")
    # The dashboard provider's folder holds the shipped dashboard.
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "roomcast.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    folder = provider["options"]["path"].rstrip("/")
    files = [src for dst, src in by_target.items() if dst.startswith(folder + "/")]
    assert files, f"nothing mounted under the provider's path {folder}"
    assert any(os.path.samefile(f, DASHBOARD) for f in files)
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home in by_target and os.path.samefile(by_target[home], DASHBOARD)


def test_datasource_points_at_the_compose_prometheus(compose):
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", source["url"])
    assert m, source["url"]
    prom = compose["services"][m.group(1)]
    assert prom["image"].startswith("prom/prometheus")
    # The URL uses the container port, the right-hand side of the published mapping.
    container_ports = {(str(p["target"]) if isinstance(p, dict) else p.rsplit(":", 1)[1]).split("/")[0]
                       for p in prom["ports"]}
    assert m.group(2) in container_ports
    # The dashboard's datasource variable offers this type.
    dash = json.loads(DASHBOARD.read_text())
    [var] = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert var["query"] == source["type"]


@pytest.fixture(scope="module")
def exported():
    """{metric name: label names} from the /metrics of a freshly started node."""
    port, = free_ports(1)
    with tempfile.TemporaryDirectory(prefix="roomcast-grafana-") as tmp:
        env = {"PATH": os.environ.get("PATH", ""), "ROOMCAST_LISTEN": f"127.0.0.1:{port}",
               "DATABASE_URL": f"sqlite://{tmp}/node.db", "ROOMCAST_LOG_LEVEL": "warn"}
        node = subprocess.Popen([str(BIN)], env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        text = r.read().decode()
                    break
                except OSError:
                    assert node.poll() is None, node.stderr.read().decode()
                    assert time.monotonic() < deadline, "node did not answer /metrics"
                    time.sleep(0.1)
        finally:
            node.terminate()
            node.wait(timeout=30)
    series = {}
    for line in text.splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
        if m and not line.startswith("#"):
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2) or ""))
            series.setdefault(m.group(1), set()).update(labels)
    return series


def queries():
    """(where, PromQL, legend) of every query the dashboard runs."""
    dash = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"], t.get("legendFormat", "")) for p in dash["panels"] for t in p["targets"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"variable {var['name']}", var["definition"], ""))
    return out


def test_the_node_exports_ops_series_from_start(exported):
    for name in ("roomcast_build_info", "roomcast_users_online", "roomcast_rooms", "roomcast_connections",
                 "roomcast_handshakes_total", "roomcast_request_duration_seconds_bucket",
                 "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "process_max_fds", "process_start_time_seconds"):
        assert name in exported, name
    assert "namespace" not in set().union(*exported.values()), "a label collides with Kubernetes' namespace"


def test_dashboard_queries_only_what_a_node_exports(exported):
    checked = 0
    for where, expr, legend in queries():
        names = set(re.findall(r"\b((?:roomcast|process)_[a-z_]+)\b", expr))
        assert names, f"{where}: no Roomcast metric in {expr}"
        missing = names - set(exported)
        assert not missing, f"{where}: {missing} not exported by a node"
        allowed = set().union(*(exported[n] for n in names)) | TARGET_LABELS
        used = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", " ".join(re.findall(r"\{([^}]*)\}", expr))))
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            used |= {l.strip() for l in group.split(",") if l.strip()}
        used |= set(re.findall(r"label_values\([^,]+,\s*(\w+)\)", expr))
        used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        unknown = used - allowed
        assert not unknown, f"{where}: labels {unknown} are not on {names}"
        checked += 1
    assert checked >= 15
