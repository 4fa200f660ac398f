"""What the benchmark runs on: the tools it checks for (and installs as root), the
release build, and the versions the report names."""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEER = REPO / "loadtest" / "node-peer"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, **kw)


def out(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
