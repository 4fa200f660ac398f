"""The whole report: machine, results table of both systems, the targets, the fan-out
sweep and how each figure is made; the history and sharded sections appended."""

from report.format import comparison_row, cpu_us_per_delivery, fmt, ratio, tally
from report.history import history_section
from tools import REPO


def report(args, results, mach, command):
    r, n = results["roomcast"], results["node"]
    rows = []

    def row(name, a, b, better, target=""):
        rows.append(comparison_row(name, a, b, better, target))

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
    row("  server CPU per delivery, µs (3 nodes)", cpu_us_per_delivery(rl), cpu_us_per_delivery(nl), "lower")
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

Warnings the servers logged during the whole run: Roomcast: {tally(r["node_warnings"])}; Node: {tally(n["node_warnings"])}.

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


def sharded_section():
    """The classic-vs-sharded adapter benchmark (its own command, `shard_bench`), kept in
    adapter/BENCHMARKS-sharded.md and carried into this report."""
    path = REPO / "adapter" / "BENCHMARKS-sharded.md"
    return "\n" + path.read_text() if path.exists() else ""


