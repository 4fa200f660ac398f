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
import signal
import sys
from pathlib import Path

# The modules beside this file: on the path when it runs, not when it is loaded by path
# (the docs tests read its parser).
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import options  # noqa: E402
from harness import Procs, prepare_database  # noqa: E402
from report.write import write_report  # noqa: E402
from services import Postgres, Redis  # noqa: E402
from steps import bench_system  # noqa: E402
from tools import REPO, build, ensure_tools, log, machine  # noqa: E402


def parser():
    return options.parser(__doc__)


def measure(args, binary, gen):
    """Every step on each system in turn, on one Redis and one Postgres; returns the
    results by system. Everything started is stopped, also on an error."""
    procs = Procs()
    services = []
    results = {}
    try:
        redis = Redis()
        services.append(redis)
        pg = Postgres()
        services.append(pg)
        for system in [s for s in args.systems.split(",") if s]:
            db_url, token = prepare_database(binary, pg, system)
            results[system] = bench_system(args, procs, system, binary, gen, token, redis, db_url, pg)
    finally:
        procs.stop_all()
        for service in services:
            service.stop()
    return results


def main():
    # SIGTERM unwinds like an error, so the finally blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = parser()
    args = ap.parse_args()
    args.roomcast_env = dict(kv.split("=", 1) for kv in args.roomcast_env)
    # scripts/bench runs from the repository: relative paths are the repository's.
    if args.results is None:
        history_only = args.only <= options.HISTORY_STEPS
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
    results = measure(args, binary, gen)
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
