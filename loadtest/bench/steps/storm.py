"""Reconnect storm: members in rooms get a steady flow of messages; node 0 is killed
with SIGKILL; its members reconnect to nodes 1 and 2 (Roomcast: with `auth.recover`;
Node: joining their room again) and every delivery is checked against the senders'
acks."""

import resource
import sys
import time

from harness import Generator, loadavg, median_run
from tools import log


def run(args, c, system, gen, token, res):
    """Runs several times on fresh nodes: the median run by the time until everyone was
    back is reported, with every run's losses beside it."""
    if "storm" not in args.only:
        return
    runs = []
    for n in range(args.storm_repeats):
        log(f"{system}: reconnect storm, {args.storm_members} members in {args.storm_rooms} rooms, "
            f"{args.storm_rate} msg/s, node 0 killed after {args.storm_kill_after} s ({n + 1}/{args.storm_repeats})")
        runs.append(storm_run(args, c, system, gen, token))
    slowest = float("inf")
    median = median_run(runs, key=lambda r: r["storm_s"] if r["storm_s"] is not None else slowest)
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
