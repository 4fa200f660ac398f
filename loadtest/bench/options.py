"""The command line of `scripts/bench`: every option with its default, and the steps
`--only` names."""

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and shows every option's default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, argparse.SUPPRESS, []) and action.option_strings and "--help" not in action.option_strings:
            default = action.default
            if isinstance(default, (list, set)):
                default = ",".join(str(v) for v in default)
            text += f" (default: {default})"
        return text

    def _split_lines(self, text, width):
        # Long words (the default list of steps) stay whole, so help can be searched.
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False, break_on_hyphens=False)


STEPS = ("idle", "capacity", "fanout", "requests", "handshakes", "storm", "history")
# Steps whose results make the "Room history and recovery" section on their own.
HISTORY_STEPS = {"storm", "history"}
MAIN_STEPS = set(STEPS) - HISTORY_STEPS


def parser(description):
    ap = argparse.ArgumentParser(prog="scripts/bench", description=description, formatter_class=HelpFormatter)
    steps = ",".join(STEPS)
    ap.add_argument("--idle-per-node", type=int, default=15000, help="idle sockets held on each node in the idle step")
    ap.add_argument("--capacity-total", type=int, default=50000,
                    help="sockets opened against the cluster in the capacity step, Roomcast only; 0 skips it")
    ap.add_argument("--hold", type=float, default=10, help="seconds the idle sockets are held before measuring")
    ap.add_argument("--settle", type=float, default=5, help="seconds of quiet between steps")
    ap.add_argument("--fanout-members", type=int, default=3000, help="members of the one room the fan-out step sends to")
    ap.add_argument("--fanout-rate", type=float, default=20, help="messages/s sent to that room for the latency measurement")
    ap.add_argument("--fanout-rates", type=lambda v: [float(x) for x in v.split(",")], default="25,50,100,200,400",
                    help="offered messages/s of the throughput sweep, comma-separated")
    ap.add_argument("--request-clients", type=int, default=300, help="sockets sending requests in the request steps")
    ap.add_argument("--request-rate", type=float, default=1000, help="requests/s offered by all of them together")
    ap.add_argument("--request-repeats", type=int, default=3,
                    help="runs of each request step; the median run (by p99) is reported")
    ap.add_argument("--handshake-concurrency", type=int, default=64, help="handshakes in flight in the handshake step")
    ap.add_argument("--storm-members", type=int, default=5000,
                    help="members in the reconnect storm, spread over the 3 nodes, one room each")
    ap.add_argument("--storm-rooms", type=int, default=50, help="rooms of the reconnect storm, one sender each")
    ap.add_argument("--storm-rate", type=float, default=100, help="messages/s sent to those rooms in all")
    ap.add_argument("--storm-duration", type=float, default=20, help="seconds of sending in the reconnect storm")
    ap.add_argument("--storm-kill-after", type=float, default=5,
                    help="seconds into the sending at which node 0 is killed (SIGKILL)")
    ap.add_argument("--storm-reconnect-delay", type=float, default=1.0,
                    help="first reconnect delay of the storm's clients, s (socket.io-client's default; ±50 %%, "
                         "doubled per failed attempt up to 5x)")
    ap.add_argument("--storm-repeats", type=int, default=3,
                    help="runs of the reconnect storm per system; the median run (by the time until every member "
                         "was back) is reported, with every run's losses")
    ap.add_argument("--history-fanout-rates", type=lambda v: [float(x) for x in v.split(",")], default="50,200",
                    help="offered messages/s of the fan-out run with history on and off (Roomcast), comma-separated")
    ap.add_argument("--history-repeats", type=int, default=3,
                    help="runs of each history on/off fan-out step; the median run (by p99) is reported")
    ap.add_argument("--history-messages", type=int, default=10000,
                    help="messages stored to measure Redis memory per stored message")
    ap.add_argument("--history-rooms", type=int, default=100, help="rooms those messages are spread over")
    ap.add_argument("--history-rate", type=float, default=1000, help="messages/s while storing them")
    ap.add_argument("--duration", type=float, default=10, help="seconds each timed step runs")
    ap.add_argument("--systems", default="roomcast,node", help="systems to run, comma-separated (roomcast,node)")
    ap.add_argument("--only", type=lambda v: set(v.split(",")), default=steps,
                    help=f"steps to run, comma-separated ({steps}); the whole report needs all but storm and "
                         "history, which alone rewrite their own section")
    ap.add_argument("--roomcast-bin", help="a roomcast binary to use instead of the release build (tuning experiments)")
    ap.add_argument("--roomcast-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the Roomcast nodes, repeatable (tuning experiments)")
    ap.add_argument("--idle-namespace", default="/",
                    help="namespace of the idle step (a guest one such as /chat measures a socket without a session)")
    ap.add_argument("--cleanup-wait", type=float, default=60,
                    help="seconds to wait for the session rows of closed sockets to be deleted")
    ap.add_argument("--report-only", metavar="JSON", help="write the report (--out) from a results file; runs nothing")
    ap.add_argument("--results", metavar="FILE",
                    help="where every raw result is written as JSON (relative paths: from the repository; default: "
                         "loadtest/results/bench.json, or loadtest/results/history.json for a run of only the "
                         "storm and history steps)")
    ap.add_argument("--out", metavar="FILE", default="BENCHMARKS.md",
                    help="where the Markdown report is written (relative paths: from the repository); "
                         "only a run of both systems and the main steps, without tuning options, writes one; a run of "
                         "both systems and exactly the storm and history steps rewrites its section of it")
    return ap

