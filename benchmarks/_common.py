"""Helpers shared by the benchmark scripts: machine facts, compile/run timing, JSON output.

Every script prints exactly one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the final JSON object)."""
    print(message, file=sys.stderr, flush=True)


def arm_watchdog(seconds: float) -> None:
    """Ends the process (exit 1, Python stacks on stderr) if it is still running after
    ``seconds``: a wedged XLA:CPU program then fails the script instead of hanging it."""
    faulthandler.dump_traceback_later(seconds, exit=True)


def machine_info() -> dict[str, Any]:
    """Versions, device and CPU facts to record beside every measurement."""
    import jaxlib

    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": f"{device.platform}: {device.device_kind}",
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def compile_jit(fn: Callable[..., Any], *args: Any) -> tuple[Callable[..., Any], float]:
    """``jax.jit(fn)`` lowered and compiled for ``args``; returns it and the seconds it took."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


class Timing(NamedTuple):
    """Wall seconds of repeated runs of one compiled program."""

    runs_s: tuple[float, ...]

    @property
    def best_s(self) -> float:
        return min(self.runs_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "best_s": self.best_s,
            "median_s": self.median_s,
            "runs_s": list(self.runs_s),
        }


def time_compiled(
    compiled: Callable[..., Any], args: Sequence[Any], repeats: int, warmup: int = 1
) -> Timing:
    """Runs ``compiled(*args)`` ``warmup`` times untimed, then ``repeats`` timed runs.

    Each run is timed with ``time.perf_counter`` around ``jax.block_until_ready``.
    """
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - start)
    return Timing(tuple(runs))


def tree_bytes(tree: Any) -> int:
    """Bytes held by the array leaves of ``tree`` (shapes and dtypes only, no transfer)."""
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def memory_stats(compiled: Any) -> dict[str, Any]:
    """temp / argument / output / alias / code bytes of a compiled program (None if unknown)."""
    try:
        analysis = compiled.memory_analysis()
    except Exception as err:  # some backends do not implement it
        return {"available": False, "why": repr(err)}
    if analysis is None:
        return {"available": False, "why": "memory_analysis() returned None"}
    names = ("temp", "argument", "output", "alias", "generated_code")
    stats: dict[str, Any] = {
        f"{name}_bytes": getattr(analysis, f"{name}_size_in_bytes", None) for name in names
    }
    parts = [stats[f"{name}_bytes"] for name in ("temp", "argument", "output")]
    stats["total_bytes"] = None if None in parts else sum(parts)
    stats["total_is"] = "temp + argument + output"
    stats["available"] = True
    return stats


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, floats keep 4 significant digits."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.4g}")
    return value


def provenance() -> dict[str, Any]:
    """The command line that made a result and the commit it ran on (``+dirty`` if edited)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        except OSError:
            return ""
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    env = [f"{k}={os.environ[k]}" for k in ("JAX_PLATFORMS", "OMP_NUM_THREADS") if k in os.environ]
    script = os.path.relpath(os.path.abspath(sys.argv[0]), root)
    return {
        "command": shlex.join([*env, "python", script, *sys.argv[1:]]),
        "git_commit": commit + ("+dirty" if dirty else ""),
    }


def emit(result: dict[str, Any]) -> None:
    """Prints ``result`` as the one JSON object on stdout, with its :func:`provenance`.

    Results that README quotes are saved under ``benchmarks/results/`` as printed.
    """
    result = {**provenance(), **result, "load_average_1m_at_end": round(os.getloadavg()[0], 2)}
    print(json.dumps(_clean(result), indent=2))


def start_side_helper(
    python: str | None, src: str | None, helper: str
) -> tuple[subprocess.Popen | None, dict[str, Any]]:
    """Starts ``helper`` (a timing server run by a peer library's side-venv interpreter
    ``python`` with its checkout ``src``); returns it and its greeting (one JSON line), or None
    and ``{"why": ...}``. PYTHONPATH is dropped so the helper never sees this checkout's jmarl."""
    if not python or not src:
        return None, {"why": "--jaxmarl-python and --jaxmarl-src not given"}
    for flag, path in (("python", python), ("src", src)):
        if not os.path.exists(path):
            return None, {"why": f"--jaxmarl-{flag} {path} does not exist"}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [python, helper, "--jaxmarl-src", src],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("{"):
        proc.kill()
        return None, {"why": f"the helper {helper} did not start (exit {proc.wait()})"}
    return proc, json.loads(line)
