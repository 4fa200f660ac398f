"""Request round trips (`request`, route `echo`) at a fixed total rate: answered where
they arrive, then by another node over a Redis stream."""

from harness import median_run, run_gen
from tools import log


def remote_requests_env(system, i):
    """Node i queues every request on the stream that node i+1 serves: each request is
    answered by another node and its reply published on node i's own channel, in
    Roomcast's worker protocol on both systems (the Node peer speaks it too)."""
    queue_on, serve = f"bench-n{(i + 1) % 3}", f"bench-n{i}"
    if system == "roomcast":
        return {"ROOMCAST_REQUEST_ROUTES": f'[{{prefix="echo", kind="worker", stream="{queue_on}"}}]',
                "ROOMCAST_REQUEST_SERVE": serve}
    return {"ROOMCAST_PEER_REQUEST_STREAM": queue_on, "ROOMCAST_REQUEST_SERVE": serve}


def run(args, c, system, gen, token, res):
    if "requests" not in args.only:
        return
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
            runs.append(run_gen(c.procs, gen, token, nodes, requests, timeout=900))
        res[key] = {**median_run(runs, key=lambda r: r["rtt"]["p99_ms"]),
                    "p99_ms_of_runs": [r["rtt"]["p99_ms"] for r in runs]}
