"""What every step runs on: the child processes, a 3-node cluster of either system, the
generator (`roomcast-loadtest`), and the session rows the steps wait for."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tools import PEER, run

JWT = {
    "ROOMCAST_JWT_SECRET": "bench-jwt-secret-0123456789abcdef-0123456789abcdef",
    "ROOMCAST_JWT_ISSUER": "roomcast-bench",
    "ROOMCAST_JWT_AUDIENCE": "roomcast-bench-clients",
}
USER = "bench-user"
SESSION_ROWS = "SELECT count(*) FROM express_sessions WHERE sid LIKE 'roomcast:%'"


class Procs:
    """Every child started here, stopped in reverse order at the end."""

    def __init__(self):
        self.children = []

    def add(self, proc, name):
        self.children.append((proc, name))
        return proc

    def stop(self, proc, grace=15):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for proc, _ in reversed(self.children):
            self.stop(proc)


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_") and k not in ("REDIS_URL", "DATABASE_URL", "RUST_LOG")}
    env.update(extra)
    return env


def prepare_database(binary, pg, system):
    """A database of its own for `system`, migrated, with the bench user; returns its URL
    and a token for that user."""
    db_url = pg.create_db(f"bench_{system}")
    env = clean_env({**JWT, "DATABASE_URL": db_url})
    run([str(binary), "migrate"], env=env, capture_output=True)
    run([str(binary), "user", "add", USER, "--password", "bench-password"], env=env, capture_output=True)
    token = run([str(binary), "token", USER], env=env, capture_output=True, text=True).stdout.split()[-1]
    return db_url, token


def loadavg():
    """1-minute load average: the machine is shared, so say how busy it was."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def median_run(runs, key):
    """The middle run by `key`: one figure from repeats on a machine that moves them."""
    return sorted(runs, key=key)[len(runs) // 2]


class Node:
    """One server process of either system; `addr` once it logged `listening`."""

    def __init__(self, procs, name, cmd, env):
        self.name = name
        self.lines = []
        self.addr = None
        self.proc = procs.add(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               text=True), name)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 30
        while self.addr is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{name} did not start:\n" + "".join(self.lines[-30:]))
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if len(self.lines) > 5000:
                del self.lines[:1000]
            if self.addr is None:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                fields = obj.get("fields", {})
                if (obj.get("message") or fields.get("message")) == "listening":
                    self.addr = obj.get("addr") or fields.get("addr")

    @property
    def url(self):
        return f"http://{self.addr}"

    def rss(self):
        return rss_kib(self.proc.pid)

    def cpu_s(self):
        # utime + stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks.
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def warnings(self):
        """Warning and error log lines, counted by message."""
        counts = {}
        for line in self.lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            level = str(obj.get("level", "")).upper()
            if level in ("WARN", "ERROR"):
                msg = obj.get("message") or obj.get("fields", {}).get("message") or "?"
                counts[msg] = counts.get(msg, 0) + 1
        return counts


def start_cluster(procs, system, binary, redis_url, db_url, extra_env, node_env=lambda i: {}):
    nodes = []
    for i in range(3):
        common = {**JWT, "REDIS_URL": redis_url, "DATABASE_URL": db_url, "ROOMCAST_LISTEN": "127.0.0.1:0",
                  "ROOMCAST_NODE_ID": f"{system}-{i}", "ROOMCAST_REDIS_KEY": f"bench-{system}",
                  "ROOMCAST_REQUEST_KEY_PREFIX": f"bench-{system}", **node_env(i)}
        if system == "roomcast":
            env = clean_env({**common, "ROOMCAST_LOG_FORMAT": "json", "ROOMCAST_LOG_LEVEL": "warn,roomcast_node::server=info",
                             **extra_env})
            nodes.append(Node(procs, f"roomcast-{i}", [str(binary), "serve"], env))
        else:
            env = clean_env(common)
            nodes.append(Node(procs, f"node-{i}", ["node", str(PEER / "server.js")], env))
    return nodes


class Generator:
    """One roomcast-loadtest process; `ready` is set when it reports its sockets up."""

    def __init__(self, procs, gen, token, targets, mode_args, sources):
        cmd = [str(gen), "--target", ",".join(t.url for t in targets), "--sources", str(sources), *mode_args]
        self.cmd = cmd
        self.ready = threading.Event()
        self.stderr = []
        env = clean_env({"LOADTEST_TOKEN": token})
        self.proc = procs.add(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True), "generator")
        self.stdout = []
        threading.Thread(target=self._err, daemon=True).start()
        threading.Thread(target=lambda: self.stdout.append(self.proc.stdout.read()), daemon=True).start()

    def _err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith('{"'):
                try:
                    if json.loads(line).get("ready"):
                        self.ready.set()
                except ValueError:
                    pass

    def result(self, timeout):
        self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + 5
        while not self.stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        text = "".join(self.stdout)
        try:
            return json.loads(text)
        except ValueError:
            sys.exit(f"generator failed ({self.proc.returncode}): {' '.join(self.cmd)}\n{''.join(self.stderr[-20:])}{text[-2000:]}")


def run_gen(procs, gen, token, nodes, mode_args, timeout):
    """Runs the generator against all nodes; adds the CPU seconds the nodes spent."""
    before = [n.cpu_s() for n in nodes]
    g = Generator(procs, gen, token, nodes, mode_args, 16)
    result = g.result(timeout=timeout)
    result["server_cpu_s"] = [round(n.cpu_s() - b, 2) for n, b in zip(nodes, before)]
    result["loadavg_after"] = loadavg()
    return result


def wait_rows_gone(pg, db_url, timeout=180):
    """Seconds until the sockets' session rows are all deleted (None: not within timeout).

    Disconnects are cleaned up asynchronously; the next step must not start while the
    previous one's deletes still hold the database pool.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pg.rows(db_url, SESSION_ROWS) == "0":
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return None


def rows_left(pg, db_url):
    return int(pg.rows(db_url, SESSION_ROWS) or 0)


class Cluster:
    """A 3-node cluster of one system, restarted between steps so that no step inherits
    another's backlog (an overloaded Node.js server keeps draining for minutes)."""

    def __init__(self, args, procs, system, binary, redis, db_url, pg):
        self.args, self.procs, self.system, self.binary = args, procs, system, binary
        self.redis, self.db_url, self.pg = redis, db_url, pg
        self.nodes = []
        self.warnings = {}

    def start(self, node_env=lambda i: {}):
        self.stop()
        self.nodes = start_cluster(self.procs, self.system, self.binary, self.redis.url, self.db_url,
                                   self.args.roomcast_env if self.system == "roomcast" else {}, node_env)
        time.sleep(2)
        return self.nodes

    def stop(self):
        for n in self.nodes:
            self.procs.stop(n.proc)
            for msg, c in n.warnings().items():
                self.warnings[msg] = self.warnings.get(msg, 0) + c
        self.nodes = []
        # A node's own shutdown sweep removes its rows; this only waits for it.
        wait_rows_gone(self.pg, self.db_url, timeout=30)
