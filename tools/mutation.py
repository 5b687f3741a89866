"""Mutation testing of jmarl's core modules with cosmic-ray: a habit, not part of CI.

Each target is a set of modules (or of functions inside them) mutated one change at a time
and tested against its own fast test files, each mutant in a fresh pytest process. Run from
the repository root with the dev extra installed (``pip install -e '.[dev]'``)::

    python tools/mutation.py --json-out mutation.json          # every target (~1 h, one core)
    python tools/mutation.py --targets returns losses          # a subset
    python tools/mutation.py --list                            # mutant counts, no test runs
    # the cheap "after" score: re-test only what survived an earlier run
    python tools/mutation.py --only-survivors tools/mutation-before.json --json-out after.json

stdout gets one JSON object (also written to ``--json-out``): per target the mutants tested,
killed, survived, timeouts, incompetent, the score ``killed / (killed + survived)`` and every
survivor (module, line, operator, occurrence, the original and mutated line, the diff). A
mutant's id is ``module:operator:occurrence`` (cosmic-ray's occurrence: the n-th place in the
module where that operator applies); ``--only-survivors`` matches it again, falling back to
the same operator on an identical source line when code above it moved. Progress goes to
stderr. ``--root`` mutates another checkout (e.g. a ``git worktree``); the tests run there,
with that tree first on ``sys.path``.

Before the mutants, each target's tests run once unmutated with an empty JAX compilation
cache (a mutant invalidates the cached programs it touches): that time times
``--timeout-factor``, plus ``--timeout-slack``, is the per-mutant timeout. A mutant that times
out is counted apart from the killed ones and stays out of the score.

Files are mutated in place and restored after every mutant, on an exception, on Ctrl-C and
on SIGTERM. A hard kill (SIGKILL) can leave a mutant on disk: the next run finds the guard
file it left (under ``~/.cache/jmarl-mutation/``) and restores the original if the file still
holds that mutant. Session databases (cosmic-ray ``WorkDB``; ``cr-report DB`` reads them) go
to ``--workdir``; ``--resume`` continues an interrupted session there.

Default ``--exclude-operators`` (regexes matched at the start of cosmic-ray operator names)
and why:

* ``ReplaceBinaryOperator`` except Add<->Sub, Mul<->Div, FloorDiv->Div, Mod->FloorDiv,
  Pow->Mul, LShift<->RShift, BitOr<->BitAnd, BitXor->BitOr: each ``+`` would otherwise give
  ten mutants, and turning float arithmetic into ``%``, ``**``, shifts or bit operations only
  raises a TypeError on JAX float arrays (absurd, killed by any test that runs the line) or
  repeats a kept mutant.
* ``ReplaceComparisonOperator`` except negation (``==``/``!=``, ``<``/``>=``, ``>``/``<=``,
  ``is``/``is not``) and boundary shifts (``<``/``<=``, ``>``/``>=``): ``==`` -> ``is`` on
  ints and strings is equivalent or absurd, and ``==`` -> ``<`` repeats a kept mutant.
* ``ReplaceUnaryOperator`` except ``-x`` <-> ``+x`` and dropping ``not`` or ``~``: ``~`` on
  floats and ``not`` on arrays raise; dropping ``-`` repeats ``-x`` -> ``+x``.
* ``RemoveDecorator``: removing ``@dataclass``, ``@property`` or ``@staticmethod`` only
  crashes at first use.

Mutants inside type annotations are skipped too: these modules use ``from __future__ import
annotations``, so ``Array | None`` -> ``Array & None`` is never evaluated (equivalent).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """A module to mutate; ``names`` restricts it to these functions/classes (qualified names,
    or their last part), found with ``ast`` at run time."""

    path: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """Modules mutated together and the tests run against each mutant.

    ``tests``: paths relative to the root; glob patterns are expanded, a pattern matching
    nothing is left out (listed under ``missing_tests``), ``path::test`` node ids pass through.
    ``keyword``: a pytest ``-k`` expression for all of them.
    """

    name: str
    modules: tuple[Scope, ...]
    tests: tuple[str, ...]
    keyword: str | None = None


# Tests that dominate a file's run time without checking anything the others do not:
# learning runs, subprocess vector envs, compiling every PPO mode twice.
_PPO_KEYWORD = (
    "not (test_two_updates_of_every_mode and not (False-shared-mappo or True-independent-ippo))"
    " and not test_vmap_over_seeds and not test_step_is_scan_safe"
)
_BRIDGE_KEYWORD = (
    "not (beats_random or jax_policy_is_managed or learn or subproc or parallel-dummy"
    " or pistonball_style or prioritized)"
)

TARGETS: tuple[Target, ...] = (
    Target("returns", (Scope("jmarl/ops/returns.py"),), ("tests/jmarl/test_returns.py",)),
    Target("losses", (Scope("jmarl/ops/losses.py"),), ("tests/jmarl/test_losses.py",)),
    Target(
        "sharing",
        (Scope("jmarl/agents/sharing.py"),),
        (
            "tests/jmarl/test_sharing.py",
            "tests/jmarl/test_ppo.py::test_shared_optimizer_state_is_stored_once",
        ),
    ),
    Target(
        "distributions",
        (Scope("jmarl/nn/distributions.py"),),
        ("tests/jmarl/test_distributions.py",),
    ),
    Target(
        "ppo",
        (Scope("jmarl/algos/rollout.py"), Scope("jmarl/algos/ppo/losses.py")),
        ("tests/jmarl/test_ppo.py", "tests/jmarl/test_ppo_loss.py", "tests/jmarl/test_wiring*.py"),
        _PPO_KEYWORD,
    ),
    Target(
        "bridge",
        (
            Scope(
                "bridge/pettingzoo_env.py",
                ("_collect_aec_rewards", "_aec_step", "_aec_present", "_aec_reset"),
            ),
            Scope(
                "bridge/tianshou_manager.py",
                ("_Restitcher", "_next_own_row", "_rows", "_same_tree"),
            ),
        ),
        ("tests/bridge/test_pettingzoo_env.py", "tests/bridge/test_tianshou_manager.py"),
        _BRIDGE_KEYWORD,
    ),
)

_KEEP_BINARY = (
    "Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Mod_FloorDiv|Pow_Mul|LShift_RShift"
    "|RShift_LShift|BitOr_BitAnd|BitAnd_BitOr|BitXor_BitOr"
)
_KEEP_COMPARISON = (
    "Eq_NotEq|NotEq_Eq|Lt_GtE|GtE_Lt|Gt_LtE|LtE_Gt|Is_IsNot|IsNot_Is|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt"
)
DEFAULT_EXCLUDE = (
    rf"core/ReplaceBinaryOperator_(?!({_KEEP_BINARY})$)",
    rf"core/ReplaceComparisonOperator_(?!({_KEEP_COMPARISON})$)",
    r"core/ReplaceUnaryOperator_(?!(USub_UAdd|UAdd_USub|Delete_Not|Delete_Invert)$)",
    r"core/RemoveDecorator",
)

PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "addopts=")

SKIP_OPERATOR = "excluded operator"
SKIP_SCOPE = "outside the target's functions"
SKIP_ANNOTATION = "inside a type annotation"
SKIP_NOT_SURVIVOR = "not a survivor of the previous run"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- source analysis ---------------------------------------------------------------------------


Span = tuple[tuple[int, int], tuple[int, int]]


def _node_span(node: ast.AST) -> Span:
    end = (node.end_lineno or node.lineno, node.end_col_offset or node.col_offset)
    return (node.lineno, node.col_offset), end


def scope_lines(source: str, names: tuple[str, ...], path: str) -> list[tuple[int, int]]:
    """Line ranges (decorators included) of the functions/classes ``names`` in ``source``."""
    found: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = f"{prefix}{child.name}"
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                for name in names:
                    if qual == name or qual.endswith("." + name):
                        found.setdefault(name, (first, child.end_lineno or child.lineno))
                visit(child, qual + ".")

    visit(ast.parse(source), "")
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"{path}: no function or class named {missing}")
    return sorted(found.values())


def annotation_spans(source: str) -> list[Span]:
    """Source spans of every annotation (arguments, returns, annotated assignments)."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            every = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
            spans += [_node_span(x.annotation) for x in every if x and x.annotation]
            if node.returns:
                spans.append(_node_span(node.returns))
        elif isinstance(node, ast.AnnAssign):
            spans.append(_node_span(node.annotation))
    return spans


def _inside(pos: tuple[int, int], span: Span) -> bool:
    return span[0] <= tuple(pos) < span[1]


# --- mutating ------------------------------------------------------------------------------------


def _operator(spec: Any) -> Any:
    import cosmic_ray.plugins

    return cosmic_ray.plugins.get_operator(spec.operator_name)(**(spec.operator_args or {}))


def mutated_source(original: str, spec: Any) -> str | None:
    from cosmic_ray.mutating import mutate_code

    return mutate_code(original, _operator(spec), spec.occurrence)


def _changed_lines(original: str, mutated: str) -> list[str]:
    a, b = original.splitlines(), mutated.splitlines()
    out = []
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            out += [line.strip() for line in b[j1:j2]]
    return out


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Guard:
    """Keeps the tree restorable. The mutant under test is recorded outside the tree before it
    is written, so that a run killed hard is repaired by the next one; leaving the context
    (normally, on an exception, Ctrl-C or SIGTERM) writes the original back."""

    def __init__(self, root: Path) -> None:
        key = hashlib.sha1(str(root).encode()).hexdigest()[:16]
        self.file = Path.home() / ".cache" / "jmarl-mutation" / f"guard-{key}.json"

    def repair(self) -> None:
        """Restores a module left mutated by a run that was killed hard."""
        if not self.file.exists():
            return
        info = json.loads(self.file.read_text())
        path = Path(info["path"])
        if path.exists() and _sha(path.read_text(encoding="utf-8")) == info["mutated_sha256"]:
            path.write_text(info["original"], encoding="utf-8", newline="")
            log(f"restored {path}: an earlier run was killed while it held a mutant")
        self.file.unlink()

    @contextlib.contextmanager
    def mutant(self, path: Path, original: bytes, mutated: str) -> Iterator[None]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "path": str(path),
            "original": original.decode("utf-8"),
            "mutated_sha256": _sha(mutated),
        }
        self.file.write_text(json.dumps(record))
        try:
            path.write_text(mutated, encoding="utf-8", newline="")
            yield
        finally:
            if path.read_text(encoding="utf-8") == mutated:
                path.write_bytes(original)
            else:
                log(f"warning: {path} changed while a mutant was under test; left as it is")
            self.file.unlink(missing_ok=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- running tests -----------------------------------------------------------------------------


@dataclass
class RunResult:
    outcome: str  # "killed" | "survived" | "timeout" | "incompetent"
    seconds: float
    returncode: int | None
    output: str


def run_tests(cmd: list[str], root: Path, env: dict[str, str], timeout: float | None) -> RunResult:
    """One fresh pytest process in its own process group; killed as a group on a timeout or an
    interrupt. Exit 1 (failures) or 2 (collection error) kills the mutant; pytest's internal,
    usage and no-tests exits (3, 4, 5) make it incompetent."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return RunResult("timeout", time.monotonic() - start, None, "timeout")
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    rc = proc.returncode
    text = out.decode("utf-8", "replace")
    outcome = "survived" if rc == 0 else "incompetent" if rc in (3, 4, 5) else "killed"
    return RunResult(outcome, time.monotonic() - start, rc, text)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def resolve_tests(target: Target, root: Path) -> tuple[list[str], list[str]]:
    found, missing = [], []
    for entry in target.tests:
        pattern, sep, node = entry.partition("::")
        paths = sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
        if not paths:
            missing.append(entry)
        found += [f"{p}{sep}{node}" for p in paths]
    return found, missing


def test_command(target: Target, tests: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-m", "not slow"]
    if target.keyword:
        cmd += ["-k", target.keyword]
    return cmd + tests


def test_env(root: Path, jax_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc must never stand in for a mutant
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["JAX_COMPILATION_CACHE_DIR"] = str(jax_cache)  # conftest only sets a default
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


# --- sessions ----------------------------------------------------------------------------------


def _mutant_id(module: str, spec: Any) -> str:
    return f"{module}:{spec.operator_name}:{spec.occurrence}"


def _mutated_line(item: Any, sources: dict[Path, str]) -> str:
    spec = item.mutations[0]
    original = sources[spec.module_path]
    return " | ".join(_changed_lines(original, mutated_source(original, spec) or original))


def _match_previous(
    previous: list[dict], items: list[Any], rel: dict[Path, str], sources: dict[Path, str]
) -> tuple[set[str], list[dict]]:
    """Job ids of the current work items that are the previous run's survivors."""
    by_key = {}
    for item in items:
        spec = item.mutations[0]
        by_key[(rel[spec.module_path], spec.operator_name, spec.occurrence)] = item

    def line_of(item: Any) -> str:
        spec = item.mutations[0]
        return sources[spec.module_path].splitlines()[spec.start_pos[0] - 1].strip()

    matched, unmatched = set(), []
    for old in previous:
        item = by_key.get((old["module"], old["operator"], old["occurrence"]))
        if item is None or line_of(item) != old["source_line"]:
            candidates = [
                it
                for (module, op, _), it in by_key.items()
                if module == old["module"]
                and op == old["operator"]
                and line_of(it) == old["source_line"]
            ]

            want = old.get("mutated_line")
            candidates = [it for it in candidates if _mutated_line(it, sources) == want]
            candidates.sort(key=lambda it: abs(it.mutations[0].start_pos[0] - old["line"]))
            item = candidates[0] if candidates else None
        if item is None:
            unmatched.append({"id": old["id"], "line": old["line"]})
        else:
            matched.add(item.job_id)
    return matched, unmatched


def prepare_session(
    db: Any,
    target: Target,
    root: Path,
    exclude: list[re.Pattern],
    previous: list[dict] | None,
    resume: bool,
) -> tuple[dict[str, int], list[dict], dict[str, Any]]:
    """Fills ``db`` with the target's work items and marks the ones not to run as SKIPPED, the
    way cosmic-ray's own filters do. Returns skip counts, unmatched previous survivors and
    the scopes' line ranges."""
    from cosmic_ray.commands.init import init
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    paths = [root / s.path for s in target.modules]
    rel = {p: s.path for p, s in zip(paths, target.modules)}
    sources = {p: p.read_text(encoding="utf-8") for p in paths}
    ranges = {
        p: scope_lines(sources[p], s.names, s.path) if s.names else None
        for p, s in zip(paths, target.modules)
    }
    notes = {p: annotation_spans(sources[p]) for p in paths}
    if not (resume and db.num_work_items):
        init(paths, db, {})

    items = list(db.pending_work_items)
    reasons: dict[str, list[str]] = {}
    kept = []
    for item in items:
        spec = item.mutations[0]
        row = spec.start_pos[0]
        scope = ranges[spec.module_path]
        if any(x.match(spec.operator_name) for x in exclude):
            reason = SKIP_OPERATOR
        elif scope is not None and not any(a <= row <= b for a, b in scope):
            reason = SKIP_SCOPE
        elif any(_inside(spec.start_pos, span) for span in notes[spec.module_path]):
            reason = SKIP_ANNOTATION
        else:
            kept.append(item)
            continue
        reasons.setdefault(reason, []).append(item.job_id)
    unmatched: list[dict] = []
    if previous is not None:
        matched, unmatched = _match_previous(previous, kept, rel, sources)
        reasons[SKIP_NOT_SURVIVOR] = [it.job_id for it in kept if it.job_id not in matched]
    for reason, ids in reasons.items():
        if ids:
            result = WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED)
            db.set_multiple_results(ids, result)
    skipped: dict[str, int] = {}
    for _, result in db.results:
        if result.worker_outcome == WorkerOutcome.SKIPPED:
            skipped[result.output] = skipped.get(result.output, 0) + 1
    scopes = {rel[p]: [list(r) for r in ranges[p]] if ranges[p] else "whole module" for p in paths}
    return skipped, unmatched, scopes


def run_target(
    target: Target, root: Path, workdir: Path, args: argparse.Namespace, previous: dict | None
) -> dict[str, Any]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    started = time.monotonic()
    tests, missing = resolve_tests(target, root)
    if not tests:
        raise SystemExit(f"{target.name}: none of its tests exist under {root}: {target.tests}")
    cmd = test_command(target, tests)
    report: dict[str, Any] = {
        "modules": [s.path for s in target.modules],
        "tests": tests,
        "missing_tests": missing,
        "keyword": target.keyword,
        "test_command": shlex.join(cmd),
    }
    db_path = workdir / f"{target.name}.sqlite"
    if not args.resume and db_path.exists():
        db_path.unlink()
    exclude = [re.compile(x) for x in args.exclude_operators]
    prev_survivors = None if previous is None else previous.get("survivors", [])
    paths = [root / s.path for s in target.modules]
    rel = {p: s.path for p, s in zip(paths, target.modules)}
    guard = Guard(root)

    with use_db(str(db_path), WorkDB.Mode.create) as db:
        skipped, unmatched, scopes = prepare_session(
            db, target, root, exclude, prev_survivors, args.resume
        )
        report["scopes"] = scopes
        report["skipped"] = skipped
        if previous is not None:
            report["unmatched_previous_survivors"] = unmatched
        pending = sorted(
            db.pending_work_items,
            key=lambda it: (
                str(it.mutations[0].module_path),
                it.mutations[0].start_pos,
                it.mutations[0].operator_name,
                it.mutations[0].occurrence,
            ),
        )
        if args.list:
            report["to_run"] = len(pending)
            return report

        cache = workdir / f"{target.name}-jax-cache"
        shutil.rmtree(cache, ignore_errors=True)
        env = test_env(root, cache)
        log(f"[{target.name}] baseline (cold JAX cache): {shlex.join(cmd)}")
        base = run_tests(cmd, root, env, None)
        if base.outcome != "survived":
            raise SystemExit(
                f"{target.name}: the unmutated tests fail (exit {base.returncode}):\n"
                + base.output[-3000:]
            )
        timeout = args.timeout_factor * base.seconds + args.timeout_slack
        report["baseline_seconds"] = round(base.seconds, 1)
        report["timeout_seconds"] = round(timeout, 1)
        log(
            f"[{target.name}] baseline {base.seconds:.1f} s; {len(pending)} mutants, "
            f"timeout {timeout:.0f} s each"
        )

        for n, item in enumerate(pending, 1):
            spec = item.mutations[0]
            raw = spec.module_path.read_bytes()
            original = raw.decode("utf-8")
            mutated = mutated_source(original, spec)
            if mutated is None:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.NO_TEST))
                continue
            with guard.mutant(spec.module_path, raw, mutated):
                res = run_tests(cmd, root, env, timeout)
            diff = "\n".join(
                difflib.unified_diff(
                    original.splitlines(),
                    mutated.splitlines(),
                    f"a/{rel[spec.module_path]}",
                    f"b/{rel[spec.module_path]}",
                    n=1,
                    lineterm="",
                )
            )
            test_outcome = {
                "survived": TestOutcome.SURVIVED,
                "incompetent": TestOutcome.INCOMPETENT,
            }.get(res.outcome, TestOutcome.KILLED)  # cosmic-ray counts a timeout as killed
            db.set_result(
                item.job_id,
                WorkResult(
                    worker_outcome=WorkerOutcome.NORMAL,
                    test_outcome=test_outcome,
                    output=res.output[-4000:],
                    diff=diff,
                ),
            )
            log(
                f"[{target.name}] {n}/{len(pending)} {res.outcome:<11} {res.seconds:5.1f} s  "
                f"{rel[spec.module_path]}:{spec.start_pos[0]} {spec.operator_name}"
            )

        report.update(_summarise(db, rel, previous))
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def _summarise(db: Any, rel: dict[Path, str], previous: dict | None) -> dict[str, Any]:
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "timeouts": 0, "incompetent": 0}
    survivors, timeouts, mutants = [], [], []
    sources: dict[Path, str] = {}
    for item, result in sorted(
        db.completed_work_items,
        key=lambda ir: (
            str(ir[0].mutations[0].module_path),
            ir[0].mutations[0].start_pos,
            ir[0].mutations[0].operator_name,
        ),
    ):
        if result.worker_outcome == WorkerOutcome.SKIPPED:
            continue
        spec = item.mutations[0]
        module = rel[spec.module_path]
        if result.worker_outcome != WorkerOutcome.NORMAL:
            kind = "incompetent"
        elif result.test_outcome == TestOutcome.SURVIVED:
            kind = "survived"
        elif result.test_outcome == TestOutcome.INCOMPETENT:
            kind = "incompetent"
        elif result.output == "timeout":
            kind = "timeouts"
        else:
            kind = "killed"
        counts[kind] += 1
        mid = _mutant_id(module, spec)
        mutants.append([mid, spec.start_pos[0], kind])
        if kind in ("survived", "timeouts"):
            source = sources.setdefault(spec.module_path, spec.module_path.read_text("utf-8"))
            mutated = mutated_source(source, spec) or source
            entry = {
                "id": mid,
                "module": module,
                "line": spec.start_pos[0],
                "col": spec.start_pos[1],
                "operator": spec.operator_name,
                "occurrence": spec.occurrence,
                "function": spec.definition_name,
                "source_line": source.splitlines()[spec.start_pos[0] - 1].strip(),
                "mutated_line": " | ".join(_changed_lines(source, mutated)),
                "diff": result.diff,
            }
            (survivors if kind == "survived" else timeouts).append(entry)
    decided = counts["killed"] + counts["survived"]
    out: dict[str, Any] = {
        "total": sum(counts.values()),
        **counts,
        "score": round(counts["killed"] / decided, 4) if decided else None,
        "survivors": survivors,
        "timed_out": timeouts,
        "mutants": mutants,
    }
    if previous is not None and "killed" in previous:
        killed = previous["killed"] + counts["killed"]
        combined = killed + counts["survived"]
        out["combined_with_previous"] = {
            "note": "previous run's killed mutants assumed still killed",
            "killed": killed,
            "survived": counts["survived"],
            "score": round(killed / combined, 4) if combined else None,
        }
    return out


# --- main ------------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [t.name for t in TARGETS]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout to mutate")
    p.add_argument(
        "--targets",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"targets to run (default all: {' '.join(names)})",
    )
    p.add_argument("--json-out", type=Path, help="also write the JSON report here")
    p.add_argument(
        "--only-survivors",
        type=Path,
        metavar="PREVIOUS.json",
        help="re-test only the mutants that survived in this earlier report",
    )
    p.add_argument(
        "--exclude-operators",
        nargs="*",
        default=list(DEFAULT_EXCLUDE),
        metavar="REGEX",
        help="operator-name regexes to skip (default: see docstring)",
    )
    p.add_argument(
        "--timeout-factor",
        type=float,
        default=3.0,
        help="per-mutant timeout = factor x cold baseline + slack (default 3)",
    )
    p.add_argument("--timeout-slack", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument(
        "--workdir",
        type=Path,
        help="session databases and JAX caches (default: a new temporary folder)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the sessions in --workdir instead of starting afresh",
    )
    p.add_argument(
        "--list", action="store_true", help="count the mutants each target would run; run no tests"
    )
    args = p.parse_args(argv)
    if args.resume and not args.workdir:
        p.error("--resume needs --workdir")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    Guard(root).repair()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="jmarl-mutation-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    previous = None
    if args.only_survivors:
        previous = json.loads(args.only_survivors.read_text())["targets"]

    report: dict[str, Any] = {
        "tool": "tools/mutation.py",
        "cosmic_ray": metadata.version("cosmic-ray"),
        "root": str(root),
        "commit": _git(root, "rev-parse", "HEAD"),
        "modified_files": (_git(root, "status", "--porcelain") or "").splitlines(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workdir": str(workdir),
        "only_survivors": str(args.only_survivors) if args.only_survivors else None,
        "exclude_operators": args.exclude_operators,
        "timeout_factor": args.timeout_factor,
        "timeout_slack": args.timeout_slack,
        "targets": {},
    }
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for target in (t for t in TARGETS if t.name in args.targets):
            prev = None
            if previous is not None:
                prev = previous.get(target.name, {"survivors": []})
            report["targets"][target.name] = run_target(target, root, workdir, args, prev)
    except KeyboardInterrupt:
        log(f"interrupted; sessions kept in {workdir} (--resume --workdir continues them)")
        return 130

    done = [r for r in report["targets"].values() if "score" in r]
    killed = sum(r["killed"] for r in done)
    survived = sum(r["survived"] for r in done)
    report["overall"] = {
        "total": sum(r["total"] for r in done),
        "killed": killed,
        "survived": survived,
        "timeouts": sum(r["timeouts"] for r in done),
        "incompetent": sum(r["incompetent"] for r in done),
        "score": round(killed / (killed + survived), 4) if killed + survived else None,
        "wall_seconds": round(sum(r.get("wall_seconds", 0) for r in done), 1),
    }
    text = json.dumps(report, indent=2)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
