"""The measured steps, one module each. Every step runs on freshly started nodes of the
system's cluster (except capacity, which follows idle on the same nodes) and adds its
results to that system's result dict."""

from harness import Cluster
from steps import fanout, handshakes, history, idle, requests, storm

# The order they run in on each system (idle runs capacity too).
IN_ORDER = (idle, requests, handshakes, fanout, storm, history)


def bench_system(args, procs, system, binary, gen, token, redis, db_url, pg):
    c = Cluster(args, procs, system, binary, redis, db_url, pg)
    res = {}
    for step in IN_ORDER:
        step.run(args, c, system, gen, token, res)
    c.stop()
    res["node_warnings"] = c.warnings
    return res
