"""Default ``jmarl train`` runs of the CTDE family vs MAPPO on simple_spread N=3, by wall time.

Each variant is the real command line (``jmarl train --algo NAME [--continuous-actions]``,
every other setting at its default) run as a subprocess, one after another, then
``jmarl evaluate --deterministic`` on its folder. Reported per variant: the return curve
(per-agent episode return, mean over the last ``--window`` updates, at every 5% of the run,
with env steps and wall seconds since the run started), the wall time at which that mean
first reaches ``--target`` (None if never), the process's whole wall time (start-up and
compile included), and the greedy evaluation return. Each off-policy variant is compared
with MAPPO on the same env variant (discrete for VDN/QMIX, continuous for MADDPG) at the
same wall time: MAPPO's curve value at the moment the variant reached the target, and at
the variant's end.

Run (about 10 minutes on 2 CPU cores)::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/ctde_learning.py > ctde_learning.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import emit, log, machine_info

VARIANTS = {
    "mappo": ["--algo", "mappo"],
    "mappo_continuous": ["--algo", "mappo", "--continuous-actions"],
    "vdn": ["--algo", "vdn"],
    "qmix": ["--algo", "qmix"],
    "maddpg_continuous": ["--algo", "maddpg", "--continuous-actions"],
}
BASELINE = {"vdn": "mappo", "qmix": "mappo", "maddpg_continuous": "mappo_continuous"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--target", type=float, default=-20.0)
    parser.add_argument("--window", type=int, default=100, help="updates in the rolling mean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", nargs="*", default=[], help="flags added to every run")
    return parser.parse_args()


def rolling(rows: list[dict[str, Any]], window: int) -> list[tuple[int, float, float]]:
    """``(env_steps, wall_s, mean return of the last window updates)`` per update."""
    out, recent = [], []
    for row in rows:
        value = row.get("episode_return")
        if value is not None and value == value:
            recent = [*recent, value][-window:]
        if recent:
            out.append((row["env_steps"], row["wall_time_s"], sum(recent) / len(recent)))
    return out


def value_at(curve: list[tuple[int, float, float]], wall_s: float | None) -> float | None:
    """The curve's return at ``wall_s`` (its last point at or before it)."""
    if wall_s is None or not curve:
        return None
    before = [r for _, t, r in curve if t <= wall_s]
    return round(before[-1], 3) if before else None


def run_variant(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cli = [sys.executable, "-m", "jmarl", "train", *VARIANTS[name], *args.extra]
    cli += ["--seed", str(args.seed), "--out", str(folder), "--quiet"]
    log(f"{name}: {' '.join(cli[2:])}")
    start = time.perf_counter()
    subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
    process_s = time.perf_counter() - start
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    curve = rolling(rows, args.window)
    reached = next((t for _, t, r in curve if r >= args.target), None)
    evaluate = [sys.executable, "-m", "jmarl", "evaluate", str(folder), "--deterministic"]
    result = json.loads(subprocess.run(evaluate, check=True, capture_output=True, text=True).stdout)
    every = max(1, len(curve) // 20)
    return {
        "command": "jmarl train " + " ".join(VARIANTS[name] + args.extra),
        "process_wall_s": round(process_s, 1),
        "env_steps": rows[-1]["env_steps"],
        "final_return": round(curve[-1][2], 3),
        "wall_s_to_target": reached,
        "greedy_eval_return": round(result["episode_return"], 3),
        "curve": [
            {"env_steps": s, "wall_s": t, "return": round(r, 3)} for s, t, r in curve[::every]
        ],
        "_curve": curve,
    }


def main() -> None:
    args = parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            results[name] = run_variant(name, args, Path(tmp) / name)
            log(f"{name}: {results[name]['final_return']} in {results[name]['process_wall_s']} s")
    for name, base in BASELINE.items():
        if name in results and base in results:
            mine, theirs = results[name], results[base]["_curve"]
            mine["baseline"] = base
            mine["baseline_return_when_target_reached"] = value_at(theirs, mine["wall_s_to_target"])
            mine["baseline_return_at_same_wall_s"] = value_at(theirs, mine["_curve"][-1][1])
    for res in results.values():
        del res["_curve"]
    emit(
        {
            "benchmark": "ctde_learning",
            "target": args.target,
            "machine": machine_info(),
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
