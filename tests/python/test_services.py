"""scripts/services against the real servers: each kind started, answering, taken down
and up again with its data, stopped without a trace; the owner watchdog; the errors."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services"


def services(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, env=env)


def start(*args):
    r = services("start", *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def redis(port, *command):
    """One command, inline protocol; the first line of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall((" ".join(command) + "\r\n").encode())
        return s.makefile("rb").readline().decode().rstrip("\r\n")


def redis_bulk(port, *command):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall((" ".join(command) + "\r\n").encode())
        reply = s.makefile("rb")
        size = int(reply.readline()[1:])
        return reply.read(size).decode()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def eventually(check, what, seconds=5):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def assert_gone(service):
    assert not os.path.exists(service["dir"])
    for pid in service["pids"]:
        assert not running(pid), f"{pid} still runs"
    for port in service["ports"]:
        assert refused(port)


def psql(service, sql):
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
    r = subprocess.run([str(bindir / "psql"), service["url"], "-tAc", sql], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_redis_starts_answers_and_stops_for_good():
    service = start("redis")
    (port,) = service["ports"]
    assert service["kind"] == "redis"
    assert service["url"] == f"redis://127.0.0.1:{port}" and service["urls"] == [service["url"]]
    assert redis(port, "PING") == "+PONG"
    assert services("stop", service["dir"]).returncode == 0
    assert_gone(service)
    # Stopping what is gone is done already.
    assert services("stop", service["dir"]).returncode == 0


def test_redis_killed_comes_back_on_its_port():
    first = start("redis")
    (port,) = first["ports"]
    assert services("stop", "--kill", first["dir"]).returncode == 0
    assert_gone(first)
    again = start("redis", "--port", str(port))
    assert again["ports"] == [port] and redis(port, "PING") == "+PONG"
    # The port is taken now: a second server on it fails, naming the reason.
    taken = services("start", "redis", "--port", str(port))
    assert taken.returncode != 0 and "exited" in taken.stderr
    assert services("stop", again["dir"]).returncode == 0


def test_a_cluster_master_keeps_its_id_and_slots_across_down_and_up():
    service = start("redis-cluster", "--masters", "3")
    ports = service["ports"]
    assert len(ports) == 3 and len(service["pids"]) == 3
    for port in ports:
        info = redis_bulk(port, "CLUSTER", "INFO")
        assert "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info
        assert "cluster_known_nodes:3" in info
    victim = ports[1]
    before = redis_bulk(victim, "CLUSTER", "MYID")
    assert services("down", service["dir"], "--port", str(victim), "--kill").returncode == 0
    assert refused(victim)
    assert redis(ports[0], "PING") == "+PONG"
    up = services("up", service["dir"], "--port", str(victim))
    assert up.returncode == 0, up.stderr
    assert redis_bulk(victim, "CLUSTER", "MYID") == before
    assert "cluster_state:ok" in redis_bulk(ports[0], "CLUSTER", "INFO")
    service["pids"] = json.loads(up.stdout)["pids"]
    assert services("stop", service["dir"]).returncode == 0
    assert_gone(service)


def test_postgres_keeps_its_data_across_down_and_up():
    service = start("postgres")
    (port,) = service["ports"]
    assert service["url"] == f"postgres://postgres@127.0.0.1:{port}/postgres"
    psql(service, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
    assert services("down", service["dir"]).returncode == 0
    assert refused(port)
    assert services("up", service["dir"]).returncode == 0
    assert psql(service, "SELECT x FROM kept") == "7"
    assert services("stop", "--kill", service["dir"]).returncode == 0
    assert not os.path.exists(service["dir"])
    assert refused(port)


def test_the_services_stop_when_their_owner_exits():
    owner = subprocess.Popen(["sleep", "60"])
    try:
        single = start("redis", "--owner", str(owner.pid))
        cluster = start("redis-cluster", "--masters", "2", "--owner", str(owner.pid))
    finally:
        owner.kill()
        owner.wait()
    for service in (single, cluster):
        eventually(lambda: not os.path.exists(service["dir"]), f"{service['dir']} removed")
        eventually(lambda: not any(running(p) for p in service["pids"]), "servers stopped")
        assert_gone(service)


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
def test_a_missing_redis_server_is_one_clear_line(kind):
    r = services("start", kind, env={**os.environ, "PATH": "/nonexistent"})
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "scripts/services: redis-server not found: install Redis (Debian: apt-get install redis-server)"]


def test_a_directory_it_did_not_start_is_refused():
    with tempfile.TemporaryDirectory() as other:
        r = services("stop", other)
        assert r.returncode != 0 and "not started by scripts/services" in r.stderr
        assert os.path.isdir(other)
