"""Idle memory: authenticated sockets held on each node, RSS before and while held; then
capacity (Roomcast only): the whole cluster asked to hold `--capacity-total` sockets, on
the same nodes."""

import sys
import time

from harness import Generator, loadavg, rows_left, wait_rows_gone
from tools import log


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


def run(args, c, system, gen, token, res):
    if not (args.idle_per_node and "idle" in args.only):
        return
    nodes = c.start()
    log(f"{system}: idle {args.idle_per_node}/node")
    res["idle"] = measure_idle(c.procs, gen, token, nodes, args.idle_per_node, args.hold, args.settle,
                               args.idle_namespace)
    res["idle"]["rows_cleanup_s"] = wait_rows_gone(c.pg, c.db_url, args.cleanup_wait)
    res["idle"]["rows_left"] = rows_left(c.pg, c.db_url)
    if system == "roomcast" and args.capacity_total and "capacity" in args.only:
        per = -(-args.capacity_total // 3)
        log(f"{system}: capacity {per * 3} connections")
        cap = measure_idle(c.procs, gen, token, nodes, per, args.hold, args.settle)
        # Per connection against the fresh nodes' RSS (before the idle step): the
        # RSS right before this step still holds what the idle step's sockets freed.
        fresh = res["idle"]["rss_base_kib"]
        cap["bytes_per_conn_vs_fresh"] = [(h - b) * 1024 / n if n else None
                                          for b, h, n in zip(fresh, cap["rss_held_kib"], cap["connected"])]
        cap["rows_cleanup_s"] = wait_rows_gone(c.pg, c.db_url, args.cleanup_wait)
        cap["rows_left"] = rows_left(c.pg, c.db_url)
        res["capacity"] = cap
