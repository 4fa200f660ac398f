"""The user-facing docs: no labels that only make sense inside the project's own
planning, and every `scripts/bench` option they show is one the script takes."""

import importlib.util
import re
import subprocess

import pytest

from conftest import REPO

# What users read: docs, configs with comments, scripts and examples they run.
USER_DOC_GLOBS = ["README.md", "BENCHMARKS.md", "docs/**/*", "deploy/**/*", "helm/**/*",
                  "examples/**/*", "loadtest/**/*", "adapter/README.md", "adapter/BENCHMARKS-sharded.md",
                  "node/assets/README.md", "docker-compose.yml", "Dockerfile", "scripts/bench"]
SKIPPED_PARTS = {"node_modules", ".venv", "results", "__pycache__"}
TEXT_SUFFIXES = {"", ".md", ".yml", ".yaml", ".json", ".js", ".mjs", ".py", ".tpl", ".txt", ".cfg", ".template",
                 ".toml", ".rs", ".sh"}
INTERNAL_LABELS = [
    (r"\bseeds?\s*0\d\d\b", "a source document's number"),
    (r"\bthe seeds?\b", "the project's source documents"),
    (r"\bmission\b", "the project's planning notes"),
    (r"(?-i:\bSPEC\b)", "the project's planning notes"),
    (r"\bissue\s*#?\d+", "an issue number"),
    (r"\banchors?\s+in\b", "the project's planning notes"),
]


def user_docs():
    seen = set()
    for pattern in USER_DOC_GLOBS:
        for path in sorted(REPO.glob(pattern)):
            rel = path.relative_to(REPO)
            if (path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIPPED_PARTS & set(rel.parts)
                    and rel not in seen and path.stat().st_size < 2_000_000):
                seen.add(rel)
                yield rel


def test_the_doc_set_is_found():
    docs = set(map(str, user_docs()))
    assert {"README.md", "docs/protocol.md", "deploy/README.md", "loadtest/README.md",
            "helm/roomcast/values.yaml", "loadtest/k6/requests.js"} <= docs


@pytest.mark.parametrize("pattern,meaning", INTERNAL_LABELS)
def test_no_internal_labels(pattern, meaning):
    hits = []
    for rel in user_docs():
        for n, line in enumerate((REPO / rel).read_text(errors="replace").splitlines(), 1):
            if re.search(pattern, line, re.I):
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert hits == [], f"{meaning}, which users do not have; say what it is instead:\n" + "\n".join(hits)


@pytest.mark.parametrize("text,pattern", [
    ("the seed 001 lobby", INTERNAL_LABELS[0][0]),
    ("see the anchors in the mission notes", INTERNAL_LABELS[2][0]),
    ("fixed in issue 17", INTERNAL_LABELS[4][0]),
])
def test_label_patterns_catch_examples(text, pattern):
    assert re.search(pattern, text, re.I)


def test_protocol_names_say_what_they_do():
    headings = re.findall(r"^## (.+)$", (REPO / "docs" / "protocol.md").read_text(), re.M)
    for namespace, name in [("/", "Workspace protocol"), ("/lobby", "Lobby protocol"), ("/chat", "Chat protocol"),
                            ("/todo", "To-do list protocol")]:
        assert f"{name}, namespace `{namespace}`" in headings, headings
    readme = (REPO / "README.md").read_text()
    for namespace in ("/lobby", "/chat", "/todo"):
        assert f"| `{namespace}` |" in readme, namespace


# --- scripts/bench ---------------------------------------------------------------------

def bench_help():
    r = subprocess.run([str(REPO / "scripts" / "bench"), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def bench_parser():
    spec = importlib.util.spec_from_file_location("bench", REPO / "loadtest" / "bench" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parser()


def test_bench_options_in_docs_exist():
    # Every option written after `scripts/bench` in a doc (continuation lines included).
    offered = set(re.findall(r"(--[a-z][a-z-]*)", bench_help()))
    used = {}
    for rel in user_docs():
        text = (REPO / rel).read_text(errors="replace").replace("\\\n", " ")
        for command in re.findall(r"scripts/bench\b([^\n`|]*)", text):
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command):
                used.setdefault(option, str(rel))
    assert used, "the docs show no scripts/bench options"
    assert {o: f for o, f in used.items() if o not in offered} == {}


def test_bench_help_shows_every_default():
    help_text = " ".join(bench_help().split())
    for action in bench_parser()._actions:
        if action.option_strings == ["-h", "--help"] or action.default in (None, []):
            continue
        shown = action.default if isinstance(action.default, str) else str(action.default)
        assert f"(default: {shown})" in help_text, action.option_strings


def test_bench_writes_the_report_to_the_chosen_file(tmp_path):
    # --report-only runs nothing: the report comes from the committed results.
    out = tmp_path / "report.md"
    r = subprocess.run([str(REPO / "scripts" / "bench"), "--report-only", "loadtest/results/bench.json",
                        "--out", str(out)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("# Benchmarks")
    assert str(out) in r.stderr
