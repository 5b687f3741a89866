"""Recurrent (GRU) vs feed-forward IPPO/MAPPO on simple_spread at the same budget, over seeds.

Each of the four variants (IPPO/MAPPO x feed-forward/``--recurrent``) trains with
``jmarl train``'s defaults (N=3, the algorithm's run defaults, ``--steps`` env steps per
seed) as one program over seeds, ``jax.jit(jax.vmap(trainer.train))(keys)``. Reported per
variant: the per-agent episode return over the last ``--tail`` of updates for each seed, its
mean over seeds and the standard error of that mean, and the recurrent-minus-feed-forward
difference with its standard error (``sqrt(se_ff^2 + se_gru^2)``). The baseline is the
feed-forward variant of the same algorithm in the same run; "within noise" means the
difference is within two standard errors.

Run (about 25 minutes on 2 CPU cores at the defaults; ``--quick`` checks the script)::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/recurrent_vs_ff.py > recurrent_vs_ff.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's jmarl first

import jax
import numpy as np
from _common import arm_watchdog, emit, log, machine_info

import jmarl
from jmarl.run.config import RunConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget, checks the script")
    parser.add_argument("--steps", type=int, default=RunConfig.steps)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--tail", type=float, default=0.1, help="fraction of updates averaged")
    parser.add_argument("--algos", nargs="+", default=["ippo", "mappo"])
    parser.add_argument(
        "--seed-loop", action="store_true", help="one jit(train) per seed instead of vmap"
    )
    return parser.parse_args()


def train_variant(algo: str, recurrent: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Final per-agent returns over seeds of one variant, and its wall seconds."""
    algorithm = jmarl.ALGORITHMS[algo]
    cfg = dataclasses.replace(algorithm.defaults, recurrent=recurrent)
    env = jmarl.make(RunConfig.env)  # the env's own defaults, as `jmarl train` uses
    mapping = jmarl.make_policy_mapping(env.spec, RunConfig.sharing)
    trainer = algorithm.make(env, cfg, args.steps, mapping)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    start = time.perf_counter()
    if args.seed_loop:
        train = jax.jit(trainer.train)
        runs = [np.asarray(train(k).metrics["episode_return"]) for k in keys]
        returns = np.stack(runs)
    else:
        returns = np.asarray(jax.jit(jax.vmap(trainer.train))(keys).metrics["episode_return"])
    wall = time.perf_counter() - start
    tail = max(1, math.ceil(args.tail * returns.shape[1]))
    per_seed = np.nanmean(returns[:, -tail:], axis=1)
    se = float(np.std(per_seed, ddof=1) / np.sqrt(len(per_seed))) if len(per_seed) > 1 else None
    log(f"{algo} recurrent={recurrent}: {per_seed.round(2)} in {wall:.0f} s")
    return {
        "algo": algo,
        "recurrent": recurrent,
        "gru_size": cfg.gru_size if recurrent else None,
        "updates": int(returns.shape[1]),
        "tail_updates": tail,
        "return_per_seed": per_seed.tolist(),
        "return_mean": float(per_seed.mean()),
        "return_se": se,
        "wall_s_all_seeds_incl_compile": wall,
    }


def compare(ff: dict[str, Any], gru: dict[str, Any]) -> dict[str, Any]:
    """Recurrent minus feed-forward, its standard error, and whether it is within 2 SE."""
    diff = gru["return_mean"] - ff["return_mean"]
    if ff["return_se"] is None or gru["return_se"] is None:
        return {"algo": ff["algo"], "gru_minus_ff": diff}
    se = math.hypot(ff["return_se"], gru["return_se"])
    return {
        "algo": ff["algo"],
        "gru_minus_ff": diff,
        "se": se,
        "within_2_se_or_better": bool(diff >= -2 * se),
    }


def main() -> None:
    args = parse_args()
    if args.quick:
        args.steps, args.seeds = 20_000, 2
    arm_watchdog(3 * 3600)
    info = machine_info()
    rows = [train_variant(a, r, args) for a in args.algos for r in (False, True)]
    comparisons = [compare(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
    emit(
        {
            "benchmark": "recurrent_vs_ff",
            **info,
            "env": f"{RunConfig.env}, N={jmarl.make(RunConfig.env).spec.num_agents}, "
            f"sharing={RunConfig.sharing}",
            "steps_per_seed": args.steps,
            "seeds": args.seeds,
            "metric": "per-agent episode return, mean over the last tail fraction of updates",
            "baseline": "the feed-forward variant of the same algorithm, same run",
            "rows": rows,
            "comparisons": comparisons,
        }
    )


if __name__ == "__main__":
    main()
