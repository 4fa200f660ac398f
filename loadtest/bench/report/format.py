"""How figures are written in the report."""


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def comparison_row(name, a, b, better, target=""):
    """A table row: Roomcast, Node, their ratio."""
    return f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} | {better} | {target} |"


def cpu_us_per_delivery(run):
    return sum(run["server_cpu_s"]) * 1e6 / run["deliveries"] if run["deliveries"] else None


def tally(counts):
    """`{message: count}` as "message ×count, ..." ("none" when empty)."""
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) or "none"
