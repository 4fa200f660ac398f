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
        started = subprocess.run([str(SCRIPT), "start", kind, "--owner", str(os.getpid())], capture_output=True,
                                 text=True, timeout=300)
        if started.returncode != 0:
            sys.exit(f"scripts/services start {kind} failed: {started.stderr.strip()}")
        self.info = json.loads(started.stdout)
        self.url = self.info["url"]

    def stop(self):
        subprocess.run([str(SCRIPT), "stop", self.info["dir"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)


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

    def create_db(self, name):
        run([self.psql, self.url, "-q", "-c", f"CREATE DATABASE {name}"], stdout=subprocess.DEVNULL)
        return f"{self.server_url}/{name}"

    def rows(self, db_url, sql):
        r = subprocess.run([self.psql, db_url, "-tA", "-c", sql], capture_output=True, text=True, timeout=30)
        return r.stdout.strip()
