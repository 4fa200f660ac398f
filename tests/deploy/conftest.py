"""Shared helpers for the deploy checks: repository paths, template rendering, and
running HAProxy/nginx unprivileged from a scratch directory."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("ROOMCAST_BIN", REPO / "target" / "debug" / "roomcast"))
AS_ROOT = os.geteuid() == 0
NOBODY = 65534


@pytest.fixture(scope="module")
def compose():
    """docker-compose.yml as `docker-compose config` resolves it."""
    r = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def free_ports(n):
    """n distinct free loopback ports, chosen while all sockets are held."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def render_template(text, values):
    """Fills ${VAR}; a placeholder without a value fails instead of becoming empty."""
    def sub(m):
        assert m.group(1) in values, f"placeholder ${{{m.group(1)}}} has no value"
        return values[m.group(1)]
    return re.sub(r"\$\{([A-Z0-9_]+)\}", sub, text)


def run_unprivileged(args, **kw):
    """Runs a command as nobody when we are root (the proxies never need root here)."""
    if AS_ROOT:
        kw.setdefault("user", NOBODY)
        kw.setdefault("group", NOBODY)
        kw.setdefault("extra_groups", [])
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture
def scratch():
    d = tempfile.mkdtemp(prefix="roomcast-deploy-")
    if AS_ROOT:
        os.chown(d, NOBODY, NOBODY)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)
