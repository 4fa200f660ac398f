"""deploy/local-cluster: start brings up Redis, Postgres, three migrated nodes and
HAProxy on loopback; status reports them; stop leaves no process behind."""

import os
import re
import subprocess
import urllib.request

import pytest

from conftest import BIN, REPO

SCRIPT = REPO / "deploy" / "local-cluster"


def run(args, env, timeout=120):
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes only once reaped; check /proc state.
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not BIN.exists(), reason=f"no roomcast binary at {BIN}")
def test_start_status_stop(tmp_path):
    state = tmp_path / "cluster"
    env = {**os.environ, "ROOMCAST_CLUSTER_DIR": str(state), "ROOMCAST_BIN": str(BIN)}
    started = run(["start"], env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        info = dict(line.split("=", 1) for line in (state / "env").read_text().split())
        pids = {p.stem: int(p.read_text()) for p in state.glob("*.pid")}
        assert set(pids) == {"redis", "node1", "node2", "node3", "haproxy"}
        assert all(alive(p) for p in pids.values())

        status = run(["status"], env, timeout=30)
        assert status.returncode == 0, status.stdout + status.stderr
        assert len(re.findall(r"node\d /readyz: 200", status.stdout)) == 3

        # Through HAProxy: an Engine.IO handshake, pinned to a node by its cookie.
        with urllib.request.urlopen(f"{info['LB_URL']}/socket.io/?EIO=4&transport=polling", timeout=5) as r:
            assert r.status == 200
            assert re.match(r"SERVERID=node[123];", r.headers["Set-Cookie"])
            assert r.read().startswith(b"0{")
        # The nodes share Postgres (migrated by `start`) and Redis.
        assert info["DATABASE_URL"].startswith("postgres://")
        for i in (1, 2, 3):
            with urllib.request.urlopen(f"{info[f'NODE{i}_OPS_URL']}/metrics", timeout=5) as r:
                assert b"roomcast_connections" in r.read()

        # A second start refuses while the first runs.
        again = run(["start"], env, timeout=30)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = run(["stop"], env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not state.exists()
    assert not [name for name, p in pids.items() if alive(p)]
    assert run(["status"], env, timeout=30).returncode != 0
