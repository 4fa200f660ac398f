"""Which part of BENCHMARKS.md a run rewrites, and writing it."""

from pathlib import Path

from options import HISTORY_STEPS, MAIN_STEPS
from report.document import report
from report.history import history_section
from tools import log

HISTORY_HEAD = "\n## Room history and recovery\n"


def with_section(text, section):
    """`text` with its "Room history and recovery" section replaced by `section` (or
    `section` put before the sharded section, or at the end)."""
    if HISTORY_HEAD in text:
        before, rest = text.split(HISTORY_HEAD, 1)
        after = rest[rest.find("\n## "):] if "\n## " in rest else "\n"
        return before + "\n" + section + after
    if "\n## Sharded vs classic" in text:
        before, after = text.split("\n## Sharded vs classic", 1)
        return before + "\n" + section + "\n## Sharded vs classic" + after
    return text + "\n" + section


def write_report(args, results, out_file):
    """The main steps: the whole report (keeping the history section already in
    `out_file` when these results have none). Exactly the storm and history steps: their
    section, put in place of the one in `out_file`. Anything else: no report."""
    existing = Path(out_file).read_text() if Path(out_file).exists() else ""
    if MAIN_STEPS <= args.only:
        text = report(args, results, results["machine"], results["command"])
        if "storm" not in results["roomcast"] and HISTORY_HEAD in existing:
            kept = existing.split(HISTORY_HEAD, 1)[1]
            kept = kept[:kept.find("\n## ")] if "\n## " in kept else kept
            text = with_section(text, HISTORY_HEAD.lstrip("\n") + kept.rstrip("\n") + "\n\n")
    elif args.only == HISTORY_STEPS:
        text = with_section(existing, history_section(args, results, results["finished_utc"], results["command"]))
    else:
        return
    Path(out_file).write_text(text)
    log(f"wrote {out_file}")

