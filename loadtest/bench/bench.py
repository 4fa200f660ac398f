#!/usr/bin/env python3
"""Roomcast vs the Node.js peer, side by side, on this machine.

Starts Redis and Postgres on loopback, then for each system a 3-node cluster on the
same Redis and Postgres (a database each), drives both with the same native generator
(`roomcast-loadtest`), and writes BENCHMARKS.md with the machine, the command, and a
table of Roomcast, Node and their ratio. Everything it starts it stops; every step is
bounded in time. Sizes are options: what actually ran is what the report says.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEER = REPO / "loadtest" / "node-peer"
JWT = {
    "ROOMCAST_JWT_SECRET": "bench-jwt-secret-0123456789abcdef-0123456789abcdef",
    "ROOMCAST_JWT_ISSUER": "roomcast-bench",
    "ROOMCAST_JWT_AUDIENCE": "roomcast-bench-clients",
}
USER = "bench-user"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, **kw)


def out(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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


def pg_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])
    return found[-1] if found else None


def ensure_tools():
    missing = []
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if not pg_bin():
        missing.append("postgresql")
    if not shutil.which("node") or not shutil.which("npm"):
        missing += ["nodejs", "npm"]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"missing {missing}: install them (apt-get) or run as root")
        log(f"installing {missing}")
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)
    lock = PEER / "package-lock.json"
    modules = PEER / "node_modules"
    if not modules.is_dir() or lock.stat().st_mtime > modules.stat().st_mtime:
        log("npm ci in loadtest/node-peer")
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER)


def build(target_dir):
    log("cargo build --release -p roomcast-node -p roomcast-loadtest")
    run(["cargo", "build", "--release", "-p", "roomcast-node", "-p", "roomcast-loadtest"], cwd=REPO,
        env={**os.environ, "CARGO_TARGET_DIR": str(target_dir)}, timeout=3600)
    return target_dir / "release" / "roomcast", target_dir / "release" / "roomcast-loadtest"


def start_redis(procs, tmp):
    port = free_port()
    proc = procs.add(subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), "redis")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if out(["redis-cli", "-p", str(port), "ping"]) == "PONG":
            return proc, f"redis://127.0.0.1:{port}"
        time.sleep(0.1)
    sys.exit("redis did not start")


class Postgres:
    def __init__(self, tmp):
        self.dir = Path(tmp) / "pg"
        self.dir.mkdir()
        self.port = free_port()
        self.bin = pg_bin()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres")

    def _as_pg(self, cmd):
        return ["runuser", "-u", "postgres", "--", *cmd] if self.root else cmd

    def start(self):
        run(self._as_pg([str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"]),
            stdout=subprocess.DEVNULL)
        # fsync off as in the test suite: both systems write the same rows, and the disk
        # of a shared machine is not what is being compared.
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        run(self._as_pg([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                         "-o", opts, "start"]), stdout=subprocess.DEVNULL)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}"

    def create_db(self, name):
        run(self._as_pg([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q",
                         "-c", f"CREATE DATABASE {name}"]), stdout=subprocess.DEVNULL)
        return f"{self.url}/{name}"

    def rows(self, db_url, sql):
        r = subprocess.run(self._as_pg([str(self.bin / "psql"), db_url, "-tA", "-c", sql]), capture_output=True,
                           text=True, timeout=30)
        return r.stdout.strip()

    def stop(self):
        subprocess.run(self._as_pg([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_") and k not in ("REDIS_URL", "DATABASE_URL", "RUST_LOG")}
    env.update(extra)
    return env


def loadavg():
    """1-minute load average: the machine is shared, so say how busy it was."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


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


def remote_requests_env(system, i):
    """Node i queues every request on the stream that node i+1 serves: each request is
    answered by another node and its reply published on node i's own channel, in
    Roomcast's worker protocol on both systems (the Node peer speaks it too)."""
    queue_on, serve = f"bench-n{(i + 1) % 3}", f"bench-n{i}"
    if system == "roomcast":
        return {"ROOMCAST_REQUEST_ROUTES": f'[{{prefix="echo", kind="worker", stream="{queue_on}"}}]',
                "ROOMCAST_REQUEST_SERVE": serve}
    return {"ROOMCAST_PEER_REQUEST_STREAM": queue_on, "ROOMCAST_REQUEST_SERVE": serve}


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


def measure_idle(procs, gen, token, nodes, per_node, hold, settle, namespace="/"):
    """One generator process per node (20k open files per process); RSS read while held."""
    base = [n.rss() for n in nodes]
    gens = [Generator(procs, gen, token, [n], ["--namespace", namespace, "idle", "--connections", str(per_node),
                                                "--hold", str(hold)], 16)
            for n in nodes]
    limit = time.monotonic() + 600
    for g in gens:
        if not g.ready.wait(timeout=max(1, limit - time.monotonic())):
            sys.exit("idle ramp did not finish within 600 s")
    time.sleep(settle)
    held = [n.rss() for n in nodes]
    results = [g.result(timeout=hold + 120) for g in gens]
    load = loadavg()
    connected = [r["connected"] for r in results]
    per_conn = [(h - b) * 1024 / c if c else None for b, h, c in zip(base, held, connected)]
    valid = [p for p in per_conn if p is not None]
    return {
        "per_node_target": per_node,
        "connected": connected,
        "rss_base_kib": base,
        "rss_held_kib": held,
        "bytes_per_conn": per_conn,
        "bytes_per_conn_mean": sum(valid) / len(valid) if valid else None,
        "errors": sum(r["errors"] for r in results),
        "handshakes_per_s_during_ramp": sum(r["handshakes_per_s"] for r in results),
        "loadavg_after": load,
        "generators": results,
    }


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
        if pg.rows(db_url, "SELECT count(*) FROM express_sessions WHERE sid LIKE 'roomcast:%'") == "0":
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return None


class Cluster:
    """A 3-node cluster of one system, restarted between steps so that no step inherits
    another's backlog (an overloaded Node.js server keeps draining for minutes)."""

    def __init__(self, args, procs, system, binary, redis_url, db_url, pg):
        self.args, self.procs, self.system, self.binary = args, procs, system, binary
        self.redis_url, self.db_url, self.pg = redis_url, db_url, pg
        self.nodes = []
        self.warnings = {}

    def start(self, node_env=lambda i: {}):
        self.stop()
        self.nodes = start_cluster(self.procs, self.system, self.binary, self.redis_url, self.db_url,
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


def bench_system(args, procs, system, binary, gen, token, redis_url, db_url, pg):
    c = Cluster(args, procs, system, binary, redis_url, db_url, pg)
    res = {}
    if args.idle_per_node and "idle" in args.only:
        nodes = c.start()
        log(f"{system}: idle {args.idle_per_node}/node")
        res["idle"] = measure_idle(procs, gen, token, nodes, args.idle_per_node, args.hold, args.settle,
                                   args.idle_namespace)
        res["idle"]["rows_cleanup_s"] = wait_rows_gone(pg, db_url, args.cleanup_wait)
        res["idle"]["rows_left"] = int(pg.rows(db_url, "SELECT count(*) FROM express_sessions WHERE sid LIKE 'roomcast:%'") or 0)
        if system == "roomcast" and args.capacity_total and "capacity" in args.only:
            per = -(-args.capacity_total // 3)
            log(f"{system}: capacity {per * 3} connections")
            cap = measure_idle(procs, gen, token, nodes, per, args.hold, args.settle)
            # Per connection against the fresh nodes' RSS (before the idle step): the
            # RSS right before this step still holds what the idle step's sockets freed.
            fresh = res["idle"]["rss_base_kib"]
            cap["bytes_per_conn_vs_fresh"] = [(h - b) * 1024 / n if n else None
                                              for b, h, n in zip(fresh, cap["rss_held_kib"], cap["connected"])]
            cap["rows_cleanup_s"] = wait_rows_gone(pg, db_url, args.cleanup_wait)
            cap["rows_left"] = int(pg.rows(db_url, "SELECT count(*) FROM express_sessions WHERE sid LIKE 'roomcast:%'") or 0)
            res["capacity"] = cap
    if "requests" in args.only:
        requests = ["requests", "--clients", str(args.request_clients), "--rate", str(args.request_rate),
                    "--duration", str(args.duration)]
        # A p99 of a few ms moves with whatever else the two cores run at that moment;
        # each kind runs several times on fresh nodes and the median run (by p99) counts.
        for key, where, node_env in (("requests", "where they arrive", lambda i: {}),
                                     ("requests_remote", "by another node",
                                      lambda i: remote_requests_env(system, i))):
            runs = []
            for n in range(args.request_repeats):
                nodes = c.start(node_env)
                log(f"{system}: requests at {args.request_rate}/s, answered {where} ({n + 1}/{args.request_repeats})")
                runs.append(run_gen(procs, gen, token, nodes, requests, timeout=900))
            res[key] = {**sorted(runs, key=lambda r: r["rtt"]["p99_ms"])[len(runs) // 2],
                        "p99_ms_of_runs": [r["rtt"]["p99_ms"] for r in runs]}
    if "handshakes" in args.only:
        nodes = c.start()
        log(f"{system}: handshakes")
        res["handshakes"] = run_gen(procs, gen, token, nodes, [
            "handshakes", "--concurrency", str(args.handshake_concurrency), "--duration", str(args.duration)],
            timeout=900)
    if "fanout" in args.only:
        fanout(args, c, system, gen, token, res)
    if "storm" in args.only:
        storm(args, c, system, gen, token, res)
    if system == "roomcast" and "history" in args.only:
        history_cost(args, c, gen, token, res)
    c.stop()
    res["node_warnings"] = c.warnings
    return res


def fanout(args, c, system, gen, token, res):
    nodes = c.start()
    log(f"{system}: fan-out latency at {args.fanout_rate} msg/s to {args.fanout_members} members")
    res["fanout_latency"] = run_gen(c.procs, gen, token, nodes, [
        "fanout", "--members", str(args.fanout_members), "--senders", "3", "--rate", str(args.fanout_rate),
        "--duration", str(args.duration), "--room", "bench-lat"], timeout=900)
    # Throughput: offered rates stepped up, each on fresh nodes; the best rate delivered
    # in full (≥ 99 %) is the sustained figure, the best over all steps the peak.
    res["fanout_sweep"] = []
    for rate in args.fanout_rates:
        nodes = c.start()
        log(f"{system}: fan-out throughput at {rate} msg/s offered")
        res["fanout_sweep"].append(run_gen(c.procs, gen, token, nodes, [
            "fanout", "--members", str(args.fanout_members), "--senders", "3", "--rate", str(rate),
            "--duration", str(args.duration), "--drain", "5", "--room", f"bench-max-{rate}"], timeout=900))
    full = [r for r in res["fanout_sweep"] if r["delivery_ratio"] >= 0.99]
    res["fanout_throughput"] = {
        "sustained": max(full, key=lambda r: r["deliveries_per_s"]) if full else None,
        "peak": max(res["fanout_sweep"], key=lambda r: r["deliveries_per_s"]),
    }


def storm(args, c, system, gen, token, res):
    """Reconnect storm: members in rooms get a steady flow of messages; node 0 is killed
    with SIGKILL; its members reconnect to nodes 1 and 2 (Roomcast: with `auth.recover`;
    Node: joining their room again) and every delivery is checked against the senders'
    acks. Runs several times on fresh nodes: the median run by the time until everyone
    was back is reported, with every run's losses beside it."""
    runs = []
    for n in range(args.storm_repeats):
        log(f"{system}: reconnect storm, {args.storm_members} members in {args.storm_rooms} rooms, "
            f"{args.storm_rate} msg/s, node 0 killed after {args.storm_kill_after} s ({n + 1}/{args.storm_repeats})")
        runs.append(storm_run(args, c, system, gen, token))
    slowest = float("inf")
    median = sorted(runs, key=lambda r: r["storm_s"] if r["storm_s"] is not None else slowest)[len(runs) // 2]
    res["storm"] = {**median, "runs": [
        {k: r[k] for k in ("lost", "duplicates", "out_of_order", "storm_s", "members_back", "replayed_messages")}
        | {"replay_p99_ms": r["replay_latency"]["p99_ms"], "reconnect_p99_ms": r["reconnect_connect_latency"]["p99_ms"]}
        for r in runs]}


def storm_run(args, c, system, gen, token):
    nodes = c.start()
    mode = ["storm", "--members", str(args.storm_members), "--rooms", str(args.storm_rooms),
            "--rate", str(args.storm_rate), "--duration", str(args.storm_duration), "--drain", "5",
            "--kill-target", "0", "--reconnect-delay", str(args.storm_reconnect_delay), "--room-prefix", "bench-storm"]
    if system == "roomcast":
        mode.append("--recover")
    cpu_before = [n.cpu_s() for n in nodes]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    g = Generator(c.procs, gen, token, nodes, mode, 16)
    if not g.ready.wait(timeout=600):
        sys.exit("storm: the members did not join within 600 s")
    time.sleep(args.storm_kill_after)
    nodes[0].proc.kill()
    result = g.result(timeout=args.storm_duration + 300)
    # Only the generator ended (and was waited for) since `children` was read: its
    # CPU time says whether it kept up.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["generator_cpu_s"] = round(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 2)
    nodes[0].proc.wait()
    result["server_cpu_s"] = [round(n.cpu_s() - b, 2) for n, b in zip(nodes[1:], cpu_before[1:])]
    result["kill_after_s"] = args.storm_kill_after
    result["loadavg_after"] = loadavg()
    # A killed node leaves its session rows behind (Roomcast's other nodes sweep them
    # after `node.dead_after`, the Node peer never): removed so the next step starts clean.
    c.pg.rows(c.db_url, f"DELETE FROM express_sessions WHERE sid LIKE 'roomcast:%' AND sess::jsonb->>'node' = '{system}-0'")
    return result


def redis_cli(redis_url, *cmd):
    port = redis_url.rsplit(":", 1)[1]
    return out(["redis-cli", "-p", port, *cmd])


def used_memory(redis_url):
    info = redis_cli(redis_url, "INFO", "memory")
    return int(next(line.split(":", 1)[1] for line in info.splitlines() if line.startswith("used_memory:")))


def history_cost(args, c, gen, token, res):
    """Roomcast with `history.enabled` on and off: the fan-out step at the given rates on
    fresh nodes each time; then Redis memory before and after messages across rooms."""
    steps = []
    # On and off side by side at each rate, so that both see the same moment of a
    # shared machine; each pair runs several times and the median run by p99 counts.
    for rate in args.history_fanout_rates:
        runs = {"true": [], "false": []}
        for n in range(args.history_repeats):
            for enabled in ("true", "false"):
                nodes = c.start(lambda i, e=enabled: {"ROOMCAST_HISTORY_ENABLED": e})
                log(f"roomcast: fan-out at {rate} msg/s with history.enabled={enabled} ({n + 1}/{args.history_repeats})")
                runs[enabled].append(run_gen(c.procs, gen, token, nodes, [
                    "fanout", "--members", str(args.fanout_members), "--senders", "3", "--rate", str(rate),
                    "--duration", str(args.duration), "--drain", "5", "--room", f"bench-hist-{enabled}-{rate}-{n}"],
                    timeout=900))
        for enabled, done in runs.items():
            median = sorted(done, key=lambda r: r["latency"]["p99_ms"])[len(done) // 2]
            steps.append({**median, "history": enabled == "true",
                          "p99_ms_of_runs": [r["latency"]["p99_ms"] for r in done],
                          "deliveries_per_s_of_runs": [r["deliveries_per_s"] for r in done]})
    nodes = c.start()
    rooms, total = args.history_rooms, args.history_messages
    log(f"roomcast: Redis memory for {total} messages in {rooms} rooms")
    time.sleep(1)
    before = used_memory(c.redis_url)
    mem = run_gen(c.procs, gen, token, nodes, [
        "storm", "--members", str(rooms), "--rooms", str(rooms), "--rate", str(args.history_rate),
        "--duration", str(total / args.history_rate), "--drain", "2", "--room-prefix", "bench-mem"], timeout=900)
    time.sleep(1)
    after = used_memory(c.redis_url)
    keys = [k for k in redis_cli(c.redis_url, "--scan", "--pattern", "*history:bench-mem-*").split() if k]
    logs = [k for k in keys if k.endswith(":log")]
    key_bytes = sum(int(redis_cli(c.redis_url, "MEMORY", "USAGE", k, "SAMPLES", "0") or 0) for k in keys)
    stored = sum(int(redis_cli(c.redis_url, "XLEN", k) or 0) for k in logs)
    entry = redis_cli(c.redis_url, "XRANGE", logs[0], "-", "+", "COUNT", "1").splitlines() if logs else []
    # XRANGE prints the id, then field, value pairs: the stored event is the value of `d`.
    data = next((entry[i + 1] for i in range(len(entry) - 1) if entry[i] == "d"), "")
    res["history_cost"] = {
        "fanout": steps,
        "memory": {
            "rooms": rooms, "messages_acked": mem["messages_acked"], "stored": stored, "keys": len(keys),
            "used_memory_before": before, "used_memory_after": after,
            "bytes_per_message": (after - before) / stored if stored else None,
            "key_bytes": key_bytes, "key_bytes_per_message": key_bytes / stored if stored else None,
            "event_bytes": len(data.encode()), "generator": mem,
        },
    }


def machine():
    lscpu = out(["lscpu"])
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "unknown")
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")), 0)
    return {
        "nproc": out(["nproc"]),
        "cpu": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "open_files": out(["bash", "-c", "ulimit -n"]),
        "rustc": out(["rustc", "--version"]),
        "node": out(["node", "--version"]),
        "redis": out(["redis-server", "--version"]),
        "postgres": out([str(pg_bin() / "postgres"), "--version"]),
        "socket.io": json.loads((PEER / "node_modules/socket.io/package.json").read_text())["version"],
        "@socket.io/redis-adapter": json.loads((PEER / "node_modules/@socket.io/redis-adapter/package.json").read_text())["version"],
    }


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def report(args, results, mach, command):
    r, n = results["roomcast"], results["node"]
    rows = []

    def row(name, a, b, better, target=""):
        q = ratio(a, b)
        rows.append(f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(q, 2)} | {better} | {target} |")

    if "idle" in r and "idle" in n:
        ri, ni = r["idle"], n["idle"]
        row(f"RSS per idle authenticated connection, bytes ({args.idle_per_node}/node)",
            ri["bytes_per_conn_mean"], ni["bytes_per_conn_mean"], "lower", "ratio ≤ 0.5")
        row("handshakes/s during the idle ramp (3 generators, 128 in flight each)",
            ri["handshakes_per_s_during_ramp"], ni["handshakes_per_s_during_ramp"], "higher")
        row(f"session rows of those sockets still present {args.cleanup_wait:g} s after they closed",
            ri.get("rows_left"), ni.get("rows_left"), "lower", "0")
        row("  seconds until all were deleted", ri["rows_cleanup_s"], ni["rows_cleanup_s"], "lower")
    rs, ns = r["fanout_throughput"]["sustained"], n["fanout_throughput"]["sustained"]
    get = lambda x, k: x[k] if x else None
    row(f"fan-out deliveries/s, sustained (best step delivered ≥ 99 %, {args.fanout_members} members over 3 nodes)",
        get(rs, "deliveries_per_s"), get(ns, "deliveries_per_s"), "higher", "ratio ≥ 3")
    row("  offered msg/s at that step", get(rs, "offered_rate"), get(ns, "offered_rate"), "")
    rp, np_ = r["fanout_throughput"]["peak"], n["fanout_throughput"]["peak"]
    row("fan-out deliveries/s, peak over the sweep", rp["deliveries_per_s"], np_["deliveries_per_s"], "higher")
    row("  delivered fraction at the peak step", rp["delivery_ratio"], np_["delivery_ratio"], "higher")
    rl, nl = r["fanout_latency"], n["fanout_latency"]
    row(f"fan-out at {args.fanout_rate:g} msg/s: deliveries/s", rl["deliveries_per_s"], nl["deliveries_per_s"], "higher")
    row("  delivery latency p50, ms", rl["latency"]["p50_ms"], nl["latency"]["p50_ms"], "lower")
    row("  delivery latency p99, ms", rl["latency"]["p99_ms"], nl["latency"]["p99_ms"], "lower")
    cpu = lambda x: sum(x["server_cpu_s"]) * 1e6 / x["deliveries"] if x["deliveries"] else None
    row("  server CPU per delivery, µs (3 nodes)", cpu(rl), cpu(nl), "lower")
    rq, nq = r["requests"], n["requests"]
    row(f"request round trip p50, ms, answered on the receiving node ({rq['achieved_rate']:.0f}/s, "
        f"{args.request_clients} clients over 3 nodes)", rq["rtt"]["p50_ms"], nq["rtt"]["p50_ms"], "lower")
    row("  p99, ms", rq["rtt"]["p99_ms"], nq["rtt"]["p99_ms"], "lower")
    rx, nx = r.get("requests_remote"), n.get("requests_remote")
    if rx and nx:
        row(f"request round trip p50, ms, answered by another node over a Redis stream ({rx['achieved_rate']:.0f}/s)",
            rx["rtt"]["p50_ms"], nx["rtt"]["p50_ms"], "lower")
        row("  p99, ms", rx["rtt"]["p99_ms"], nx["rtt"]["p99_ms"], "lower", "Roomcast < 5 ms")
        each_run = lambda x: ", ".join(fmt(v, 2) for v in x["p99_ms_of_runs"])
        if "p99_ms_of_runs" in rx and "p99_ms_of_runs" in nx:
            rows.append(f"|   p99 of each of the {len(rx['p99_ms_of_runs'])} runs, ms | {each_run(rx)} | {each_run(nx)} | | | |")
        row("  replies lost", rx["lost"], nx["lost"], "lower", "0")
    rh, nh = r["handshakes"], n["handshakes"]
    row(f"handshakes/s with token auth + session row ({args.handshake_concurrency} loops)",
        rh["handshakes_per_s"], nh["handshakes_per_s"], "higher")
    runs = lambda x: [x.get("idle", {"errors": 0}), x["fanout_latency"], *x["fanout_sweep"], x["requests"],
                      x.get("requests_remote", {"errors": 0}), x["handshakes"]]
    row("generator-side errors (all runs but the sweep's overload steps)",
        sum(v["errors"] for v in runs(r) if v.get("mode") != "fanout" or v is rl),
        sum(v["errors"] for v in runs(n) if v.get("mode") != "fanout" or v is nl), "lower")

    sweep = ["| system | offered msg/s | deliveries/s | delivered | p50 ms | p99 ms | server CPU s (3 nodes) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, x in (("Roomcast", r), ("Node", n)):
        for step in x["fanout_sweep"]:
            sweep.append(f"| {name} | {fmt(step['offered_rate'], 0)} | {fmt(step['deliveries_per_s'], 0)} | "
                         f"{step['delivery_ratio'] * 100:.1f} % | {fmt(step['latency']['p50_ms'])} | "
                         f"{fmt(step['latency']['p99_ms'])} | {fmt(sum(step['server_cpu_s']))} |")
    loads = [v["loadavg_after"] for x in (r, n) for v in runs(x) if isinstance(v, dict) and "loadavg_after" in v]
    load_line = (f"1-minute load average after each step: {min(loads):.1f}–{max(loads):.1f} on {mach['nproc']} cores "
                 "(anything above the benchmark's own load is other work on the shared machine).") if loads else ""
    warn = lambda x: ", ".join(f"{k} ×{v}" for k, v in sorted(x["node_warnings"].items())) or "none"

    cap = r.get("capacity")
    cap_line = ""
    if cap:
        cap_line = (f"\n**Capacity** (Roomcast): {sum(cap['connected']):,} of {cap['per_node_target'] * 3:,} connections "
                    f"held across 3 nodes ({cap['connected']}), generator-side errors: {cap['errors']}, "
                    f"RSS per node {[round(k / 1024) for k in cap['rss_base_kib']]} MiB before the step (after the idle "
                    f"step's sockets closed) and {[round(k / 1024) for k in cap['rss_held_kib']]} MiB while held; "
                    + (f"all session rows deleted {cap['rows_cleanup_s']} s after the sockets closed.\n"
                       if cap["rows_cleanup_s"] is not None else
                       f"{cap['rows_left']:,} session rows still present {args.cleanup_wait:g} s after the sockets closed.\n"))

    verdict = lambda ok: "holds" if ok else "does not hold"
    targets = []
    if "idle" in r and "idle" in n:
        q = ratio(r["idle"]["bytes_per_conn_mean"], n["idle"]["bytes_per_conn_mean"])
        targets.append(f"- RSS per idle connection at most half of Node's: {verdict(q is not None and q <= 0.5)} "
                       f"(ratio {fmt(q, 2)}); where each socket's memory goes: `loadtest/README.md`, "
                       "*Memory per idle connection*.")
    q = ratio(get(rs, "deliveries_per_s"), get(ns, "deliveries_per_s"))
    targets.append(f"- Fan-out deliveries/s at least 3x Node's (sustained, ≥ 99 % delivered): "
                   f"{verdict(q is not None and q >= 3)} (ratio {fmt(q, 2)}).")
    if rx:
        p99 = rx["rtt"]["p99_ms"]
        targets.append(f"- Cross-node request round trip p99 under 5 ms at ~1k req/s: "
                       f"{verdict(rx['lost'] == 0 and rx['rtt']['count'] > 0 and p99 < 5)} ({fmt(p99, 2)} ms at "
                       f"{rx['achieved_rate']:.0f}/s, {rx['lost']} lost).")
    if cap:
        held = sum(cap["connected"])
        targets.append(f"- {cap['per_node_target'] * 3:,} concurrent connections across 3 nodes without errors: "
                       f"{verdict(held == cap['per_node_target'] * 3 and cap['errors'] == 0)} on the client side "
                       f"({held:,} held, {cap['errors']} errors); server side, see the session-row lines above.")

    mach_lines = "\n".join(f"| {k} | {v} |" for k, v in mach.items())
    when = results.get("finished_utc", "(time not recorded)")
    return f"""# Benchmarks: Roomcast vs Node.js socket.io

Measured {when} by one run of:

```sh
{command}
```

Both clusters ran one after the other on this machine: 3 nodes each, one Redis, one
Postgres (a database each, fsync off), driven by the same native generator
(`loadtest/`, `roomcast-loadtest`) over WebSocket from 127.0.0.2–17. Auth is a HS256 JWT
in the handshake; every accepted handshake writes a session row and every disconnect
deletes it, on both sides. The generator, the servers, Redis and Postgres share the
same {mach['nproc']} cores with each other and with whatever else runs on the machine
(the load average below says how busy it was), so every figure includes that contention.
Raw results: `loadtest/results/bench.json`.

## Machine

| | |
| --- | --- |
{mach_lines}

## Results

| measure | Roomcast | Node | Roomcast / Node | better | target |
| --- | ---: | ---: | ---: | --- | --- |
{chr(10).join(rows)}
{cap_line}
Targets of the load-test issue, as measured in this run:

{chr(10).join(targets)}

Fan-out sweep (each step {args.duration:g} s of sending, {args.fanout_members} members, 3 senders):

{chr(10).join(sweep)}

Warnings the servers logged during the whole run: Roomcast: {warn(r)}; Node: {warn(n)}.

{load_line}

How each figure is made (each step on freshly started nodes, except that the capacity
step follows the idle step on the same nodes):

- RSS: `VmRSS` of each node from `/proc/<pid>/status` before the sockets and while
  {args.idle_per_node} authenticated sockets per node are held ({args.settle} s after the last
  one connected); (held − before) / connected, averaged over the 3 nodes.
- Fan-out: {args.fanout_members} members of one room spread over the 3 nodes, 3 senders
  (one per node) sending `sendMessage` with a microsecond timestamp for {args.duration} s.
  Deliveries/s = `incomingMessage`s received / (last delivery − first send). Latency is
  receive time − timestamp, one clock.
- Requests: `request` route `echo` at a fixed total rate from clients spread over the
  3 nodes; round trip = reply event `request <uuid>` received − timestamp in the params.
  Each request step runs {getattr(args, "request_repeats", 1)} times on fresh nodes; the table shows the median run by
  p99.
  Answered where they arrive: by the receiving node itself. Answered by another node:
  node i queues each request on a Redis stream (XADD) that only node i+1 reads
  (XREADGROUP), which answers it and publishes the reply on node i's own channel
  (Roomcast: a `worker` route and `requests.serve`; the Node peer speaks the same
  protocol, `docs/workers.md`).
- Handshakes: loops of TCP connect, WebSocket upgrade, Engine.IO open, CONNECT with
  the token, CONNECT reply, close.
{history_section(args, results, when, command) if "storm" in r else ""}{sharded_section()}"""


def history_section(args, results, when, command):
    """The reconnect storm (both systems) and the cost of history (Roomcast)."""
    r, n = results["roomcast"], results.get("node", {})
    rs, ns = r.get("storm"), n.get("storm")
    parts = [f"""## Room history and recovery

Measured {when} by:

```sh
{command}
```
"""]
    if rs and ns:
        rows = []

        def row(name, a, b, better, target=""):
            rows.append(f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} | {better} | {target} |")

        def na(name, a, b, target=""):
            rows.append(f"| {name} | {a} | {b} | | | {target} |")

        lat = lambda x, k, p: x[k][p] if x[k]["count"] else None
        row("members dropped by the kill (those of node 0)", rs["dropped_members"], ns["dropped_members"], "")
        row("  back in their room before the end", rs["members_back"], ns["members_back"], "higher")
        row("seconds from the first drop until every member was back in its room", rs["storm_s"], ns["storm_s"],
            "lower")
        row("  per member, drop → back in the room, p50 ms", lat(rs, "back_latency", "p50_ms"),
            lat(ns, "back_latency", "p50_ms"), "lower")
        row("  p99 ms", lat(rs, "back_latency", "p99_ms"), lat(ns, "back_latency", "p99_ms"), "lower")
        row("messages acknowledged to the senders", rs["messages_acked"], ns["messages_acked"], "")
        row("deliveries due (acknowledged messages × members of their room)", rs["expected_deliveries"],
            ns["expected_deliveries"], "")
        row("messages lost (due, never delivered)", rs["lost"], ns["lost"], "lower", "0")
        row("  of which to the members that reconnected", rs["lost_by_dropped_members"],
            ns["lost_by_dropped_members"], "lower")
        row("duplicates (the same message twice to one member)", rs["duplicates"], ns["duplicates"], "lower", "0")
        row("out of order (a message after a later one of its room)", rs["out_of_order"], ns["out_of_order"], "lower")
        row("missed messages replayed on reconnect", rs["replayed_messages"], ns["replayed_messages"], "")
        na("replay latency p50, ms (reconnect handshake → last missed message in)",
           fmt(lat(rs, "replay_latency", "p50_ms")), "no replay")
        na("  p99, ms", fmt(lat(rs, "replay_latency", "p99_ms")), "no replay")
        if "reconnect_connect_latency" in rs and "reconnect_connect_latency" in ns:
            row("  of which the reconnect handshake (TCP connect → CONNECT), p50 ms",
                lat(rs, "reconnect_connect_latency", "p50_ms"), lat(ns, "reconnect_connect_latency", "p50_ms"), "lower")
            row("    p99 ms", lat(rs, "reconnect_connect_latency", "p99_ms"),
                lat(ns, "reconnect_connect_latency", "p99_ms"), "lower")
            na("  and until the `recovery` event, p50 ms", fmt(lat(rs, "recovery_event_latency", "p50_ms")), "")
            na("    p99 ms", fmt(lat(rs, "recovery_event_latency", "p99_ms")), "")
        row("live delivery latency p99, ms (every delivery not replayed)", lat(rs, "live_latency", "p99_ms"),
            lat(ns, "live_latency", "p99_ms"), "lower")
        row("server CPU s of the 2 surviving nodes over the step", sum(rs["server_cpu_s"]), sum(ns["server_cpu_s"]),
            "lower")
        row("generator CPU s over the step", rs["generator_cpu_s"], ns["generator_cpu_s"], "")
        each = lambda x, k, d=1: ", ".join(fmt(run[k], d) if run[k] is not None else "n/a" for run in x.get("runs", []))
        if "runs" in rs and "runs" in ns:
            na(f"each of the {len(rs['runs'])} runs: messages lost", each(rs, "lost"), each(ns, "lost"), "0")
            na("  duplicates", each(rs, "duplicates"), each(ns, "duplicates"), "0")
            na("  seconds until every member was back", each(rs, "storm_s"), each(ns, "storm_s"))
            na("  replay latency p99, ms", each(rs, "replay_p99_ms"), "no replay")
            na("  reconnect handshake p99, ms", each(rs, "reconnect_p99_ms"), each(ns, "reconnect_p99_ms"))
        outcome = lambda x: ", ".join(f"{k} ×{v}" for k, v in sorted(x["outcomes"].items())) or "none"
        errs = lambda x: ", ".join(f"{k} ×{v}" for k, v in sorted(x["session_errors"].items())) or "none"
        parts.append(f"""### Reconnect storm

{rs['members']:,} members in {rs['rooms']} rooms (one room each), spread evenly over 3 nodes, and one
sender per room on nodes 1 and 2 sending numbered, timestamped `sendMessage`s,
{fmt(rs['offered_rate'], 0)} messages/s in all, for {rs['duration_s']:g} s. {rs['kill_after_s']:g} s into the
sending node 0 is killed with SIGKILL. Its members reconnect to nodes 1 and 2 with
socket.io-client's default backoff (first attempt after 0.5–1.5 s, doubled per failure
up to 5 s): on Roomcast with `auth.recover` (the credential of their last `recovery`
event and the offset and epoch of the last message they got); on Node, as a Socket.IO
client without recovery does, by joining their room again. Every member checks each
delivery against the numbers the senders got acknowledged; deliveries count until
5 s after the last send. Each system runs {len(rs.get('runs', [rs]))} times on fresh nodes; the table shows the
median run by the time until every member was back, and every run's losses below it.
Node's `connectionStateRecovery` is not in the comparison: it
does not work with the Redis adapter, and a client that lost its node has nothing to
recover from.

| measure | Roomcast | Node | Roomcast / Node | better | target |
| --- | ---: | ---: | ---: | --- | --- |
{chr(10).join(rows)}

The time back in the room includes the client's reconnect delay (0.5–1.5 s before the
first attempt), the same on both sides; what follows it is a handshake and, on
Roomcast, the check of the credential and the replay. Replay latency: from the start of
the reconnect handshake to the last missed message received (to the `recovery` event
for a member that had missed nothing), per reconnected member. The generator's CPU
time and the live latency of the members that stayed say whether the generator kept
up with {rs['members']:,} sockets.

Recovery outcomes: Roomcast: {outcome(rs)}; Node: {outcome(ns)}.
Generator-side events (the dropped connections, reconnect attempts that hit the dead
node): Roomcast: {errs(rs)}; Node: {errs(ns)}.
1-minute load average after the step (2 cores, shared): Roomcast {rs['loadavg_after']:.1f}, Node {ns['loadavg_after']:.1f}.
""")
    hc = r.get("history_cost")
    if hc:
        sweep = ["| offered msg/s | history | deliveries/s | delivered | p50 ms | p99 ms | server CPU µs per delivery "
                 "| p99 ms of each run | deliveries/s of each run |",
                 "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        cpu_per_delivery = lambda x: sum(x["server_cpu_s"]) * 1e6 / x["deliveries"] if x["deliveries"] else None
        for step in hc["fanout"]:
            cpu = cpu_per_delivery(step)
            sweep.append(f"| {fmt(step['offered_rate'], 0)} | {'on' if step['history'] else 'off'} | "
                         f"{fmt(step['deliveries_per_s'], 0)} | {step['delivery_ratio'] * 100:.1f} % | "
                         f"{fmt(step['latency']['p50_ms'])} | {fmt(step['latency']['p99_ms'])} | {fmt(cpu)} | "
                         f"{', '.join(fmt(v) for v in step.get('p99_ms_of_runs', []))} | "
                         f"{', '.join(fmt(v, 0) for v in step.get('deliveries_per_s_of_runs', []))} |")
        ratios = []
        for on in [x for x in hc["fanout"] if x["history"]]:
            off = next((x for x in hc["fanout"] if not x["history"] and x["offered_rate"] == on["offered_rate"]), None)
            if off:
                ratios.append(f"at {fmt(on['offered_rate'], 0)} msg/s, on / off: deliveries/s "
                              f"{fmt(ratio(on['deliveries_per_s'], off['deliveries_per_s']), 2)}, p99 "
                              f"{fmt(ratio(on['latency']['p99_ms'], off['latency']['p99_ms']), 2)}, server CPU per "
                              f"delivery {fmt(ratio(cpu_per_delivery(on), cpu_per_delivery(off)), 2)}")
        m = hc["memory"]
        parts.append(f"""### The cost of history (Roomcast)

Fan-out as in the table above ({args.fanout_members} members of one room over 3 nodes, 3 senders,
{args.duration:g} s of sending, fresh nodes each run), with `history.enabled` on (every
message stored in Redis and delivered through the history feed, with its offset) and off
(a plain adapter broadcast). On and off alternate, {getattr(args, "history_repeats", 1)} runs each; the row is
the median run by p99:

{chr(10).join(sweep)}

{"; ".join(ratios)}.

Redis memory per stored message: {m['stored']:,} messages stored in {m['rooms']} rooms (one member
each, {fmt(m['generator']['offered_rate'], 0)} messages/s), `used_memory` from `INFO memory` before and after:
{fmt(m['used_memory_after'] - m['used_memory_before'])} bytes more, **{fmt(m['bytes_per_message'], 0)} bytes per
message**; the {m['keys']} history keys by `MEMORY USAGE`: {fmt(m['key_bytes'])} bytes,
{fmt(m['key_bytes_per_message'], 0)} per message. Each stored event (the `incomingMessage` as
delivered, with its id, sender, room, timestamps and a message of two numbers) is
{m['event_bytes']} bytes of JSON, so the rest is the stream's per-entry overhead. A room keeps at most
`history.size` (500) messages for `history.ttl` (10 min): at this size, a full room costs
about {fmt((m['key_bytes_per_message'] or 0) * 500 / 1024, 0)} KiB of Redis memory. Redis grows a stream in blocks
(listpacks of up to 4 KiB, `stream-node-max-bytes`), so these figures move in steps
between runs.
""")
    return "\n".join(parts) + "\n"


def sharded_section():
    """The classic-vs-sharded adapter benchmark (its own command, `shard_bench`), kept in
    adapter/BENCHMARKS-sharded.md and carried into this report."""
    path = REPO / "adapter" / "BENCHMARKS-sharded.md"
    return "\n" + path.read_text() if path.exists() else ""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and shows every option's default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, argparse.SUPPRESS, []) and action.option_strings and "--help" not in action.option_strings:
            default = action.default
            if isinstance(default, (list, set)):
                default = ",".join(str(v) for v in default)
            text += f" (default: {default})"
        return text

    def _split_lines(self, text, width):
        # Long words (the default list of steps) stay whole, so help can be searched.
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False, break_on_hyphens=False)


STEPS = ("idle", "capacity", "fanout", "requests", "handshakes", "storm", "history")
# Steps whose results make the "Room history and recovery" section on their own.
HISTORY_STEPS = {"storm", "history"}
MAIN_STEPS = set(STEPS) - HISTORY_STEPS


def parser():
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__, formatter_class=HelpFormatter)
    steps = ",".join(STEPS)
    ap.add_argument("--idle-per-node", type=int, default=15000, help="idle sockets held on each node in the idle step")
    ap.add_argument("--capacity-total", type=int, default=50000,
                    help="sockets opened against the cluster in the capacity step, Roomcast only; 0 skips it")
    ap.add_argument("--hold", type=float, default=10, help="seconds the idle sockets are held before measuring")
    ap.add_argument("--settle", type=float, default=5, help="seconds of quiet between steps")
    ap.add_argument("--fanout-members", type=int, default=3000, help="members of the one room the fan-out step sends to")
    ap.add_argument("--fanout-rate", type=float, default=20, help="messages/s sent to that room for the latency measurement")
    ap.add_argument("--fanout-rates", type=lambda v: [float(x) for x in v.split(",")], default="25,50,100,200,400",
                    help="offered messages/s of the throughput sweep, comma-separated")
    ap.add_argument("--request-clients", type=int, default=300, help="sockets sending requests in the request steps")
    ap.add_argument("--request-rate", type=float, default=1000, help="requests/s offered by all of them together")
    ap.add_argument("--request-repeats", type=int, default=3,
                    help="runs of each request step; the median run (by p99) is reported")
    ap.add_argument("--handshake-concurrency", type=int, default=64, help="handshakes in flight in the handshake step")
    ap.add_argument("--storm-members", type=int, default=5000,
                    help="members in the reconnect storm, spread over the 3 nodes, one room each")
    ap.add_argument("--storm-rooms", type=int, default=50, help="rooms of the reconnect storm, one sender each")
    ap.add_argument("--storm-rate", type=float, default=100, help="messages/s sent to those rooms in all")
    ap.add_argument("--storm-duration", type=float, default=20, help="seconds of sending in the reconnect storm")
    ap.add_argument("--storm-kill-after", type=float, default=5,
                    help="seconds into the sending at which node 0 is killed (SIGKILL)")
    ap.add_argument("--storm-reconnect-delay", type=float, default=1.0,
                    help="first reconnect delay of the storm's clients, s (socket.io-client's default; ±50 %%, "
                         "doubled per failed attempt up to 5x)")
    ap.add_argument("--storm-repeats", type=int, default=3,
                    help="runs of the reconnect storm per system; the median run (by the time until every member "
                         "was back) is reported, with every run's losses")
    ap.add_argument("--history-fanout-rates", type=lambda v: [float(x) for x in v.split(",")], default="50,200",
                    help="offered messages/s of the fan-out run with history on and off (Roomcast), comma-separated")
    ap.add_argument("--history-repeats", type=int, default=3,
                    help="runs of each history on/off fan-out step; the median run (by p99) is reported")
    ap.add_argument("--history-messages", type=int, default=10000,
                    help="messages stored to measure Redis memory per stored message")
    ap.add_argument("--history-rooms", type=int, default=100, help="rooms those messages are spread over")
    ap.add_argument("--history-rate", type=float, default=1000, help="messages/s while storing them")
    ap.add_argument("--duration", type=float, default=10, help="seconds each timed step runs")
    ap.add_argument("--systems", default="roomcast,node", help="systems to run, comma-separated (roomcast,node)")
    ap.add_argument("--only", type=lambda v: set(v.split(",")), default=steps,
                    help=f"steps to run, comma-separated ({steps}); the whole report needs all but storm and "
                         "history, which alone rewrite their own section")
    ap.add_argument("--roomcast-bin", help="a roomcast binary to use instead of the release build (tuning experiments)")
    ap.add_argument("--roomcast-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the Roomcast nodes, repeatable (tuning experiments)")
    ap.add_argument("--idle-namespace", default="/",
                    help="namespace of the idle step (a guest one such as /chat measures a socket without a session)")
    ap.add_argument("--cleanup-wait", type=float, default=60,
                    help="seconds to wait for the session rows of closed sockets to be deleted")
    ap.add_argument("--report-only", metavar="JSON", help="write the report (--out) from a results file; runs nothing")
    ap.add_argument("--results", metavar="FILE",
                    help="where every raw result is written as JSON (relative paths: from the repository; default: "
                         "loadtest/results/bench.json, or loadtest/results/history.json for a run of only the "
                         "storm and history steps)")
    ap.add_argument("--out", metavar="FILE", default="BENCHMARKS.md",
                    help="where the Markdown report is written (relative paths: from the repository); "
                         "only a run of both systems and the main steps, without tuning options, writes one; a run of "
                         "both systems and exactly the storm and history steps rewrites its section of it")
    return ap


HISTORY_HEAD = "\n## Room history and recovery\n"


def with_section(text, section):
    """`text` with its "Room history and recovery" section replaced by `section` (or
    `section` put before the sharded section, or at the end)."""
    if HISTORY_HEAD in text:
        before, rest = text.split(HISTORY_HEAD, 1)
        after = rest[rest.find("\n## "):] if "\n## " in rest else "\n"
        return before + "\n" + section + after
    if "\n## Sharded vs classic" in text:
        before, after = text.split("\n## Sharded vs classic", 1)
        return before + "\n" + section + "\n## Sharded vs classic" + after
    return text + "\n" + section


def write_report(args, results, out_file):
    """The main steps: the whole report (keeping the history section already in
    `out_file` when these results have none). Exactly the storm and history steps: their
    section, put in place of the one in `out_file`. Anything else: no report."""
    existing = Path(out_file).read_text() if Path(out_file).exists() else ""
    if MAIN_STEPS <= args.only:
        text = report(args, results, results["machine"], results["command"])
        if "storm" not in results["roomcast"] and HISTORY_HEAD in existing:
            kept = existing.split(HISTORY_HEAD, 1)[1]
            kept = kept[:kept.find("\n## ")] if "\n## " in kept else kept
            text = with_section(text, HISTORY_HEAD.lstrip("\n") + kept.rstrip("\n") + "\n\n")
    elif args.only == HISTORY_STEPS:
        text = with_section(existing, history_section(args, results, results["finished_utc"], results["command"]))
    else:
        return
    Path(out_file).write_text(text)
    log(f"wrote {out_file}")


def main():
    # SIGTERM unwinds like an error, so the finally blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = parser()
    args = ap.parse_args()
    args.roomcast_env = dict(kv.split("=", 1) for kv in args.roomcast_env)
    # scripts/bench runs from the repository: relative paths are the repository's.
    if args.results is None:
        history_only = args.only <= HISTORY_STEPS
        args.results = "loadtest/results/history.json" if history_only else "loadtest/results/bench.json"
    args.results, args.out = str(REPO / args.results), str(REPO / args.out)
    if args.report_only:
        args.report_only = str(REPO / args.report_only)
    command = "scripts/bench " + " ".join(sys.argv[1:])
    if args.report_only:
        results = json.loads(Path(args.report_only).read_text())
        saved = argparse.Namespace(**{**results["args"], "only": set(results["args"]["only"])})
        write_report(saved, results, args.out)
        return

    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    ensure_tools()
    binary, gen = build(target_dir)
    if args.roomcast_bin:
        binary = Path(args.roomcast_bin).resolve()
    procs = Procs()
    results = {}
    with tempfile.TemporaryDirectory(prefix="roomcast-bench-") as tmp:
        os.chmod(tmp, 0o755)
        pg = Postgres(tmp)
        try:
            _, redis_url = start_redis(procs, tmp)
            pg.start()
            for system in [s for s in args.systems.split(",") if s]:
                db_url = pg.create_db(f"bench_{system}")
                env = clean_env({**JWT, "DATABASE_URL": db_url})
                run([str(binary), "migrate"], env=env, capture_output=True)
                run([str(binary), "user", "add", USER, "--password", "bench-password"], env=env, capture_output=True)
                token = run([str(binary), "token", USER], env=env, capture_output=True, text=True).stdout.split()[-1]
                results[system] = bench_system(args, procs, system, binary, gen, token, redis_url, db_url, pg)
        finally:
            procs.stop_all()
            pg.stop()
    results["machine"] = machine()
    results["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results["args"] = {**vars(args), "only": sorted(args.only)}
    results["command"] = command
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=2))
    log(f"wrote {args.results}")
    if "roomcast" in results and "node" in results and not args.roomcast_bin and not args.roomcast_env \
            and args.idle_namespace == "/":
        write_report(args, results, args.out)
    print(json.dumps({k: results[k] for k in results if k in ("roomcast", "node")}, indent=1)[:4000])


if __name__ == "__main__":
    main()
