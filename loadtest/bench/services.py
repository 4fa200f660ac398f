"""The Redis and the Postgres both systems share, started on loopback by
`scripts/services` like every test's: no persistence, Postgres with fsync off (both
systems write the same rows, and the disk of a shared machine is not what is being
compared)."""

import json
import os
import subprocess
import sys

from tools import REPO, out, pg_bin, run

SCRIPT = REPO / "scripts" / "services"


class Service:
    """One service of `scripts/services`. It watches this process: if the benchmark dies
    before `stop`, the service goes with it."""

    def __init__(self, kind):
        self.info = services("start", kind, "--owner", str(os.getpid()))
        self.url = self.info["url"]

    def stop(self):
        subprocess.run([str(SCRIPT), "stop", self.info["dir"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)


def services(*cmd):
    """Runs `scripts/services`: its JSON line (None from a command that prints none), or the
    benchmark stops with its error."""
    done = subprocess.run([str(SCRIPT), *cmd], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"scripts/services {' '.join(cmd)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout) if done.stdout.strip() else None


class Redis(Service):
    def __init__(self):
        super().__init__("redis")

    def cli(self, *cmd):
        return out(["redis-cli", "-p", str(self.info["ports"][0]), *cmd])


class Postgres(Service):
    """A database per system on one server."""

    def __init__(self):
        super().__init__("postgres")
        self.server_url = self.url.rsplit("/", 1)[0]
        self.psql = str(pg_bin() / "psql")
        # Room for tuning runs with larger pools (3 nodes × ROOMCAST_DATABASE_MAX_CONNECTIONS)
        # than the default 100 allows; the setting needs a restart, on the same port and data.
        run([self.psql, self.url, "-q", "-c", "ALTER SYSTEM SET max_connections = 200"], stdout=subprocess.DEVNULL)
        services("down", self.info["dir"])
        services("up", self.info["dir"])

    def create_db(self, name):
        run([self.psql, self.url, "-q", "-c", f"CREATE DATABASE {name}"], stdout=subprocess.DEVNULL)
        return f"{self.server_url}/{name}"

    def rows(self, db_url, sql):
        r = subprocess.run([self.psql, db_url, "-tA", "-c", sql], capture_output=True, text=True, timeout=30)
        return r.stdout.strip()
