"""Fan-out: members of one room over the 3 nodes, one sender per node. Latency at one
rate, then throughput over a sweep of offered rates."""

from harness import run_gen
from tools import log


def fanout_mode(args, rate, room, drain):
    """The generator's fan-out mode on `--fanout-members` members; `drain`: 5 s more to
    count deliveries after the last send."""
    return ["fanout", "--members", str(args.fanout_members), "--senders", "3", "--rate", str(rate),
            "--duration", str(args.duration), *(["--drain", "5"] if drain else []), "--room", room]


def run(args, c, system, gen, token, res):
    if "fanout" not in args.only:
        return
    nodes = c.start()
    log(f"{system}: fan-out latency at {args.fanout_rate} msg/s to {args.fanout_members} members")
    res["fanout_latency"] = run_gen(c.procs, gen, token, nodes,
                                    fanout_mode(args, args.fanout_rate, "bench-lat", drain=False), timeout=900)
    # Throughput: offered rates stepped up, each on fresh nodes; the best rate delivered
    # in full (≥ 99 %) is the sustained figure, the best over all steps the peak.
    res["fanout_sweep"] = []
    for rate in args.fanout_rates:
        nodes = c.start()
        log(f"{system}: fan-out throughput at {rate} msg/s offered")
        res["fanout_sweep"].append(run_gen(c.procs, gen, token, nodes,
                                           fanout_mode(args, rate, f"bench-max-{rate}", drain=True), timeout=900))
    full = [r for r in res["fanout_sweep"] if r["delivery_ratio"] >= 0.99]
    res["fanout_throughput"] = {
        "sustained": max(full, key=lambda r: r["deliveries_per_s"]) if full else None,
        "peak": max(res["fanout_sweep"], key=lambda r: r["deliveries_per_s"]),
    }
