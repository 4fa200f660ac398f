"""The cost of history (Roomcast only): the fan-out step with `history.enabled` on and
off on fresh nodes each time; then Redis memory before and after messages stored across
rooms."""

import time

from harness import median_run, run_gen
from steps.fanout import fanout_mode
from tools import log


def used_memory(redis):
    info = redis.cli("INFO", "memory")
    return int(next(line.split(":", 1)[1] for line in info.splitlines() if line.startswith("used_memory:")))


def run(args, c, system, gen, token, res):
    if system != "roomcast" or "history" not in args.only:
        return
    steps = []
    # On and off side by side at each rate, so that both see the same moment of a
    # shared machine; each pair runs several times and the median run by p99 counts.
    for rate in args.history_fanout_rates:
        runs = {"true": [], "false": []}
        for n in range(args.history_repeats):
            for enabled in ("true", "false"):
                nodes = c.start(lambda i, e=enabled: {"ROOMCAST_HISTORY_ENABLED": e})
                log(f"roomcast: fan-out at {rate} msg/s with history.enabled={enabled} ({n + 1}/{args.history_repeats})")
                runs[enabled].append(run_gen(c.procs, gen, token, nodes,
                                             fanout_mode(args, rate, f"bench-hist-{enabled}-{rate}-{n}", drain=True),
                                             timeout=900))
        for enabled, done in runs.items():
            median = median_run(done, key=lambda r: r["latency"]["p99_ms"])
            steps.append({**median, "history": enabled == "true",
                          "p99_ms_of_runs": [r["latency"]["p99_ms"] for r in done],
                          "deliveries_per_s_of_runs": [r["deliveries_per_s"] for r in done]})
    nodes = c.start()
    rooms, total = args.history_rooms, args.history_messages
    log(f"roomcast: Redis memory for {total} messages in {rooms} rooms")
    time.sleep(1)
    before = used_memory(c.redis)
    mem = run_gen(c.procs, gen, token, nodes, [
        "storm", "--members", str(rooms), "--rooms", str(rooms), "--rate", str(args.history_rate),
        "--duration", str(total / args.history_rate), "--drain", "2", "--room-prefix", "bench-mem"], timeout=900)
    time.sleep(1)
    after = used_memory(c.redis)
    keys = [k for k in c.redis.cli("--scan", "--pattern", "*history:bench-mem-*").split() if k]
    logs = [k for k in keys if k.endswith(":log")]
    key_bytes = sum(int(c.redis.cli("MEMORY", "USAGE", k, "SAMPLES", "0") or 0) for k in keys)
    stored = sum(int(c.redis.cli("XLEN", k) or 0) for k in logs)
    entry = c.redis.cli("XRANGE", logs[0], "-", "+", "COUNT", "1").splitlines() if logs else []
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
