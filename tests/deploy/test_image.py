"""The image's build, replayed without a Docker engine: the repository filtered by
.dockerignore as Docker filters a build context, the builder stage's COPY lines and
shell commands run in a scratch directory, its `cargo build` run as `cargo check` (the
same manifests, lock file and sources, without the release codegen), and the runtime
stage checked to copy only what the builder produced."""

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

# Reruns reuse the compiled dependencies; the replayed context is rebuilt each time.
REPLAY = REPO / "target" / "image-check"
CARGO_TIMEOUT = 1500
# Commands the replay knows how to run; anything else in the builder stage must be
# taught here rather than silently skipped.
SHELL_COMMANDS = {"mkdir", "echo", "touch", "rm"}


# --- .dockerignore, as Docker reads it ----------------------------------------------

def compile_pattern(pattern):
    """A .dockerignore pattern as a regex: `*` and `?` stay within one path segment,
    `**` spans any number of segments (none included), `[...]` is a character class."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 == len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch in ".+()|{}$^":
            out += "\\" + ch
        else:
            out += ch
        i += 1
    return re.compile(out + "$")


class DockerIgnore:
    def __init__(self, text):
        self.rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if negated else line).lstrip("/")
            self.rules.append((negated, pattern, compile_pattern(pattern)))

    def excluded(self, rel):
        """The last rule matching the path or one of its parent directories decides."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for negated, _, regex in self.rules:
            if any(regex.match(p) for p in prefixes):
                result = not negated
        return result

    def may_include_below(self, rel_dir):
        """Whether a `!` rule could bring back something inside an excluded directory
        (Docker then walks into it instead of skipping it)."""
        for negated, pattern, _ in self.rules:
            if negated:
                literal = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
                if literal.startswith(rel_dir + "/") or (rel_dir + "/").startswith(literal):
                    return True
        return False


def build_context(ignore, dest):
    """Copies the repository into dest as Docker would send it (mtimes kept, as COPY
    keeps them)."""
    for root, dirs, files in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO)
        rel = lambda name: name if rel_root == "." else f"{rel_root}/{name}"
        dirs[:] = [d for d in dirs if not ignore.excluded(rel(d)) or ignore.may_include_below(rel(d))]
        for f in files:
            if not ignore.excluded(rel(f)):
                target = dest / rel(f)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(root) / f, target, follow_symlinks=False)


# --- the Dockerfile ------------------------------------------------------------------

def stages(text):
    """[(name, [(INSTRUCTION, args)])] for each FROM, continuation lines joined."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)$", rest, re.I)
            out.append((m.group(1) if m else str(len(out)), []))
        elif out:
            out[-1][1].append((word, rest))
    return out


def copy_args(rest):
    words = shlex.split(rest)
    flags = {w.split("=", 1)[0]: w.partition("=")[2] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def bin_names(manifest):
    """The binaries a package builds: its [[bin]] names, else the package name."""
    data = tomllib.loads(manifest.read_text())
    return {b["name"] for b in data.get("bin", [])} or {data["package"]["name"]}


def cargo_check_command(words):
    """`cargo build ...` as `cargo check ...`: the same packages, lock and features."""
    assert words[1] == "build", f"the replay knows `cargo build`, not {shlex.join(words)}"
    args = [w for w in words[2:] if w != "--release"]
    offline = ["--offline"] if (Path.home() / ".cargo" / "registry" / "cache").is_dir() else []
    return ["cargo", "check", *args, *offline]


def run_builder(instructions, context, workdir_root):
    """Runs the builder stage's instructions; returns the image paths it leaves
    (its work tree and what it installs) and the output of its last cargo command."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(REPLAY / "target"), CARGO_TERM_COLOR="never")
    workdir = None
    installed, last_cargo = set(), ""
    for word, rest in instructions:
        if word == "WORKDIR":
            workdir = rest
            (workdir_root / rest.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            flags, sources, dest = copy_args(rest)
            assert "--from" not in flags, "the builder stage copies only from the context"
            base = workdir_root / workdir.lstrip("/")
            target = base / dest
            for src in sources:
                assert not re.search(r"[*?\[]", src), f"the replay copies plain paths only: {src}"
                path = context / src
                assert path.exists(), f"COPY {src}: not in the build context (missing or excluded by .dockerignore)"
                if path.is_dir():
                    shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
                else:
                    into_dir = dest.endswith("/") or len(sources) > 1
                    out = target / path.name if into_dir else target
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        elif word == "RUN":
            cwd = workdir_root / workdir.lstrip("/")
            package = None
            for step in (s.strip() for s in rest.split("&&")):
                words = shlex.split(step)
                if words[0] == "cargo":
                    if "-p" in words:
                        package = words[words.index("-p") + 1]
                    r = subprocess.run(cargo_check_command(words), cwd=cwd, env=env, capture_output=True,
                                       text=True, timeout=CARGO_TIMEOUT)
                    assert r.returncode == 0, f"RUN {step}\n{r.stderr[-4000:]}"
                    last_cargo = r.stderr
                elif words[0] == "install":
                    # The binary a release build leaves: check it is one the built
                    # package declares; the check does not link it.
                    src, dest = words[-2], words[-1]
                    m = re.fullmatch(r"target/release/([\w-]+)", src)
                    assert m and package, f"install {src}: not a binary of the package built before it"
                    manifests = {tomllib.loads(p.read_text())["package"]["name"]: p
                                 for p in cwd.glob("*/Cargo.toml")}
                    assert m.group(1) in bin_names(manifests[package]), f"{package} builds no binary {m.group(1)}"
                    installed.add(dest)
                else:
                    assert words[0] in SHELL_COMMANDS, f"the replay does not know `{words[0]}`: {step}"
                    r = subprocess.run(["bash", "-c", step], cwd=cwd, capture_output=True, text=True, timeout=60)
                    assert r.returncode == 0, f"RUN {step}\n{r.stderr}"
    tree = {"/" + str(p.relative_to(workdir_root)) for p in workdir_root.rglob("*")}
    return tree | installed, last_cargo


def replay(dockerfile, dockerignore):
    shutil.rmtree(REPLAY / "context", ignore_errors=True)
    shutil.rmtree(REPLAY / "root", ignore_errors=True)
    context = REPLAY / "context"
    context.mkdir(parents=True)
    build_context(DockerIgnore(dockerignore), context)
    [(builder, build), (_, runtime)] = stages(dockerfile)
    produced, last_cargo = run_builder(build, context, REPLAY / "root")
    return context, builder, produced, last_cargo, runtime


DOCKERFILE = (REPO / "Dockerfile").read_text()
DOCKERIGNORE = (REPO / ".dockerignore").read_text()


# --- tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,path,excluded", [
    ("target", "target/debug/roomcast", True),
    ("target-*", "target-bench/x", True),
    ("target-*", "node/target-x", False),           # patterns are anchored at the root
    ("**/node_modules", "node_modules/a.js", True),  # ** matches no directory too
    ("**/node_modules", "tests/e2e/node_modules/a.js", True),
    ("*.db", "roomcast.db", True),
    ("*.db", "node/roomcast.db", False),
    ("/docs", "docs/protocol.md", True),
    ("docs/*.md", "docs/protocol.md", True),
    ("docs/*.md", "docs/sub/x.md", False),
    ("docs/**", "docs/sub/x.md", True),
    ("no?e", "node/src/main.rs", True),
])
def test_ignore_patterns(pattern, path, excluded):
    assert DockerIgnore(pattern).excluded(path) is excluded


def test_ignore_negation_last_rule_wins():
    ignore = DockerIgnore("loadtest\n!loadtest/Cargo.toml\n")
    assert ignore.excluded("loadtest/src/main.rs")
    assert not ignore.excluded("loadtest/Cargo.toml")
    assert ignore.may_include_below("loadtest") and not ignore.may_include_below("docs")
    assert DockerIgnore("!loadtest/Cargo.toml\nloadtest\n").excluded("loadtest/Cargo.toml")


def check_image(dockerfile, dockerignore):
    """Replays the build and checks what a real build would need; returns the context."""
    context, builder, produced, last_cargo, runtime = replay(dockerfile, dockerignore)
    # Every workspace member's manifest reached the builder (cargo loads them all).
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    for m in members:
        assert f"/src/{m}/Cargo.toml" in produced, m
    # The last build compiled the real sources, not the placeholder layer's: the
    # touch after the source COPY made them newer.
    for crate in ("roomcast-node", "roomcast-adapter"):
        # "Compiling" when the crate has a build script, "Checking" otherwise.
        assert re.search(rf"(Checking|Compiling) {crate} ", last_cargo), \
            f"the real {crate} sources were not compiled:\n{last_cargo}"
    # The runtime stage copies only what the builder left and the context holds.
    copies = [copy_args(rest) for word, rest in runtime if word == "COPY"]
    assert copies, "the runtime stage copies the binary from the builder"
    for flags, sources, _ in copies:
        for src in sources:
            if flags.get("--from") == builder:
                assert src in produced, f"COPY --from={builder} {src}: the builder stage does not produce it"
            else:
                assert (context / src).exists(), f"COPY {src}: not in the build context"
    return context


def test_the_image_builds_from_its_context():
    context = check_image(DOCKERFILE, DOCKERIGNORE)
    # The build context leaves out what the image never needs.
    for path in ("target", "tests", ".git", "loadtest/src", "helm"):
        assert not (context / path).exists(), path


@pytest.mark.parametrize("what,dockerfile,dockerignore,error", [
    ("a workspace member's manifest",
     re.sub(r"^COPY loadtest/Cargo\.toml.*\n", "", DOCKERFILE, flags=re.M), DOCKERIGNORE,
     "failed to load manifest for workspace member"),
    ("the migrations the binary embeds",
     re.sub(r"^COPY migrations .*\n", "", DOCKERFILE, flags=re.M), DOCKERIGNORE,
     "migration directory .*/migrations/"),
    ("a path .dockerignore excludes", DOCKERFILE, DOCKERIGNORE + "node/assets\n",
     "couldn't read `node/src/server/../../assets/"),
    ("the touch that makes the real sources newer than the placeholders",
     re.sub(r"touch node/src/main\.rs [^&]*&& ", "", DOCKERFILE), DOCKERIGNORE,
     # Either the stale placeholders win silently, or the node is built against the
     # adapter's placeholder and does not compile: both are a broken image.
     "the real roomcast-node sources were not compiled|could not compile `roomcast-node`"),
    ("a runtime COPY of what the builder installed",
     DOCKERFILE.replace("COPY --from=builder /usr/local/bin/roomcast ", "COPY --from=builder /usr/bin/roomcast "),
     DOCKERIGNORE, "does not produce it"),
])
def test_replay_fails_without(what, dockerfile, dockerignore, error):
    # The replay is only worth something if it breaks where a real build breaks.
    assert dockerfile != DOCKERFILE or dockerignore != DOCKERIGNORE, f"the mutation ({what}) changed nothing"
    with pytest.raises(AssertionError, match=error):
        check_image(dockerfile, dockerignore)
