"""Fixtures: a real `roomcast` node on an ephemeral port with a fresh SQLite file."""

import json
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("ROOMCAST_BIN", str(REPO / "target" / "debug" / "roomcast"))


@contextmanager
def running_node(users=()):
    """A node without Redis on a fresh SQLite file, with `users` (password `<login>-pw`);
    yields its URL and stops it after."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_") and k != "REDIS_URL"}
        env.update(
            DATABASE_URL=f"sqlite://{tmp}/roomcast.db",
            ROOMCAST_LISTEN="127.0.0.1:0",
            ROOMCAST_LOG_FORMAT="json",
        )
        proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            url = None
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("roomcast exited before listening")
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("message") == "listening":
                    url = "http://" + record["addr"]
            assert url, "roomcast did not listen within 20 s"
            for user in users:
                subprocess.run(
                    [BIN, "user", "add", user, "--password", f"{user}-pw"],
                    env=env, check=True, capture_output=True, timeout=30,
                )
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def node_url():
    with running_node() as url:
        yield url
