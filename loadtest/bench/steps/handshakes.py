"""Handshakes: loops of connect, token auth (a session row written), close."""

from harness import run_gen
from tools import log


def run(args, c, system, gen, token, res):
    if "handshakes" not in args.only:
        return
    nodes = c.start()
    log(f"{system}: handshakes")
    res["handshakes"] = run_gen(c.procs, gen, token, nodes, [
        "handshakes", "--concurrency", str(args.handshake_concurrency), "--duration", str(args.duration)],
        timeout=900)
