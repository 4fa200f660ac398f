"""The "Room history and recovery" section: the reconnect storm (both systems) and the
cost of history (Roomcast)."""

from report.format import comparison_row, cpu_us_per_delivery, fmt, ratio, tally


def history_section(args, results, when, command):
    r, n = results["roomcast"], results.get("node", {})
    rs, ns = r.get("storm"), n.get("storm")
    parts = [f"""## Room history and recovery

Measured {when} by:

```sh
{command}
```
"""]
    if rs and ns:
        rows = []

        def row(name, a, b, better, target=""):
            rows.append(comparison_row(name, a, b, better, target))

        def na(name, a, b, target=""):
            rows.append(f"| {name} | {a} | {b} | | | {target} |")

        lat = lambda x, k, p: x[k][p] if x[k]["count"] else None
        row("members dropped by the kill (those of node 0)", rs["dropped_members"], ns["dropped_members"], "")
        row("  back in their room before the end", rs["members_back"], ns["members_back"], "higher")
        row("seconds from the first drop until every member was back in its room", rs["storm_s"], ns["storm_s"],
            "lower")
        row("  per member, drop → back in the room, p50 ms", lat(rs, "back_latency", "p50_ms"),
            lat(ns, "back_latency", "p50_ms"), "lower")
        row("  p99 ms", lat(rs, "back_latency", "p99_ms"), lat(ns, "back_latency", "p99_ms"), "lower")
        row("messages acknowledged to the senders", rs["messages_acked"], ns["messages_acked"], "")
        row("deliveries due (acknowledged messages × members of their room)", rs["expected_deliveries"],
            ns["expected_deliveries"], "")
        row("messages lost (due, never delivered)", rs["lost"], ns["lost"], "lower", "0")
        row("  of which to the members that reconnected", rs["lost_by_dropped_members"],
            ns["lost_by_dropped_members"], "lower")
        row("duplicates (the same message twice to one member)", rs["duplicates"], ns["duplicates"], "lower", "0")
        row("out of order (a message after a later one of its room)", rs["out_of_order"], ns["out_of_order"], "lower")
        row("missed messages replayed on reconnect", rs["replayed_messages"], ns["replayed_messages"], "")
        na("replay latency p50, ms (reconnect handshake → last missed message in)",
           fmt(lat(rs, "replay_latency", "p50_ms")), "no replay")
        na("  p99, ms", fmt(lat(rs, "replay_latency", "p99_ms")), "no replay")
        if "reconnect_connect_latency" in rs and "reconnect_connect_latency" in ns:
            row("  of which the reconnect handshake (TCP connect → CONNECT), p50 ms",
                lat(rs, "reconnect_connect_latency", "p50_ms"), lat(ns, "reconnect_connect_latency", "p50_ms"), "lower")
            row("    p99 ms", lat(rs, "reconnect_connect_latency", "p99_ms"),
                lat(ns, "reconnect_connect_latency", "p99_ms"), "lower")
            na("  and until the `recovery` event, p50 ms", fmt(lat(rs, "recovery_event_latency", "p50_ms")), "")
            na("    p99 ms", fmt(lat(rs, "recovery_event_latency", "p99_ms")), "")
        row("live delivery latency p99, ms (every delivery not replayed)", lat(rs, "live_latency", "p99_ms"),
            lat(ns, "live_latency", "p99_ms"), "lower")
        row("server CPU s of the 2 surviving nodes over the step", sum(rs["server_cpu_s"]), sum(ns["server_cpu_s"]),
            "lower")
        row("generator CPU s over the step", rs["generator_cpu_s"], ns["generator_cpu_s"], "")
        each = lambda x, k, d=1: ", ".join(fmt(run[k], d) if run[k] is not None else "n/a" for run in x.get("runs", []))
        if "runs" in rs and "runs" in ns:
            na(f"each of the {len(rs['runs'])} runs: messages lost", each(rs, "lost"), each(ns, "lost"), "0")
            na("  duplicates", each(rs, "duplicates"), each(ns, "duplicates"), "0")
            na("  seconds until every member was back", each(rs, "storm_s"), each(ns, "storm_s"))
            na("  replay latency p99, ms", each(rs, "replay_p99_ms"), "no replay")
            na("  reconnect handshake p99, ms", each(rs, "reconnect_p99_ms"), each(ns, "reconnect_p99_ms"))
        parts.append(f"""### Reconnect storm

{rs['members']:,} members in {rs['rooms']} rooms (one room each), spread evenly over 3 nodes, and one
sender per room on nodes 1 and 2 sending numbered, timestamped `sendMessage`s,
{fmt(rs['offered_rate'], 0)} messages/s in all, for {rs['duration_s']:g} s. {rs['kill_after_s']:g} s into the
sending node 0 is killed with SIGKILL. Its members reconnect to nodes 1 and 2 with
socket.io-client's default backoff (first attempt after 0.5–1.5 s, doubled per failure
up to 5 s): on Roomcast with `auth.recover` (the credential of their last `recovery`
event and the offset and epoch of the last message they got); on Node, as a Socket.IO
client without recovery does, by joining their room again. Every member checks each
delivery against the numbers the senders got acknowledged; deliveries count until
5 s after the last send. Each system runs {len(rs.get('runs', [rs]))} times on fresh nodes; the table shows the
median run by the time until every member was back, and every run's losses below it.
Node's `connectionStateRecovery` is not in the comparison: it
does not work with the Redis adapter, and a client that lost its node has nothing to
recover from.

| measure | Roomcast | Node | Roomcast / Node | better | target |
| --- | ---: | ---: | ---: | --- | --- |
{chr(10).join(rows)}

The time back in the room includes the client's reconnect delay (0.5–1.5 s before the
first attempt), the same on both sides; what follows it is a handshake and, on
Roomcast, the check of the credential and the replay. Replay latency: from the start of
the reconnect handshake to the last missed message received (to the `recovery` event
for a member that had missed nothing), per reconnected member. The generator's CPU
time and the live latency of the members that stayed say whether the generator kept
up with {rs['members']:,} sockets.

Recovery outcomes: Roomcast: {tally(rs["outcomes"])}; Node: {tally(ns["outcomes"])}.
Generator-side events (the dropped connections, reconnect attempts that hit the dead
node): Roomcast: {tally(rs["session_errors"])}; Node: {tally(ns["session_errors"])}.
1-minute load average after the step (2 cores, shared): Roomcast {rs['loadavg_after']:.1f}, Node {ns['loadavg_after']:.1f}.
""")
    hc = r.get("history_cost")
    if hc:
        sweep = ["| offered msg/s | history | deliveries/s | delivered | p50 ms | p99 ms | server CPU µs per delivery "
                 "| p99 ms of each run | deliveries/s of each run |",
                 "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for step in hc["fanout"]:
            cpu = cpu_us_per_delivery(step)
            sweep.append(f"| {fmt(step['offered_rate'], 0)} | {'on' if step['history'] else 'off'} | "
                         f"{fmt(step['deliveries_per_s'], 0)} | {step['delivery_ratio'] * 100:.1f} % | "
                         f"{fmt(step['latency']['p50_ms'])} | {fmt(step['latency']['p99_ms'])} | {fmt(cpu)} | "
                         f"{', '.join(fmt(v) for v in step.get('p99_ms_of_runs', []))} | "
                         f"{', '.join(fmt(v, 0) for v in step.get('deliveries_per_s_of_runs', []))} |")
        ratios = []
        for on in [x for x in hc["fanout"] if x["history"]]:
            off = next((x for x in hc["fanout"] if not x["history"] and x["offered_rate"] == on["offered_rate"]), None)
            if off:
                ratios.append(f"at {fmt(on['offered_rate'], 0)} msg/s, on / off: deliveries/s "
                              f"{fmt(ratio(on['deliveries_per_s'], off['deliveries_per_s']), 2)}, p99 "
                              f"{fmt(ratio(on['latency']['p99_ms'], off['latency']['p99_ms']), 2)}, server CPU per "
                              f"delivery {fmt(ratio(cpu_us_per_delivery(on), cpu_us_per_delivery(off)), 2)}")
        m = hc["memory"]
        parts.append(f"""### The cost of history (Roomcast)

Fan-out as in the table above ({args.fanout_members} members of one room over 3 nodes, 3 senders,
{args.duration:g} s of sending, fresh nodes each run), with `history.enabled` on (every
message stored in Redis and delivered through the history feed, with its offset) and off
(a plain adapter broadcast). On and off alternate, {getattr(args, "history_repeats", 1)} runs each; the row is
the median run by p99:

{chr(10).join(sweep)}

{"; ".join(ratios)}.

Redis memory per stored message: {m['stored']:,} messages stored in {m['rooms']} rooms (one member
each, {fmt(m['generator']['offered_rate'], 0)} messages/s), `used_memory` from `INFO memory` before and after:
{fmt(m['used_memory_after'] - m['used_memory_before'])} bytes more, **{fmt(m['bytes_per_message'], 0)} bytes per
message**; the {m['keys']} history keys by `MEMORY USAGE`: {fmt(m['key_bytes'])} bytes,
{fmt(m['key_bytes_per_message'], 0)} per message. Each stored event (the `incomingMessage` as
delivered, with its id, sender, room, timestamps and a message of two numbers) is
{m['event_bytes']} bytes of JSON, so the rest is the stream's per-entry overhead. A room keeps at most
`history.size` (500) messages for `history.ttl` (10 min): at this size, a full room costs
about {fmt((m['key_bytes_per_message'] or 0) * 500 / 1024, 0)} KiB of Redis memory. Redis grows a stream in blocks
(listpacks of up to 4 KiB, `stream-node-max-bytes`), so these figures move in steps
between runs.
""")
    return "\n".join(parts) + "\n"


