"""Throughput of jmarl's whole jitted PPO training loop on simple_spread.

Times ``jax.jit(jmarl.make_ppo(env, cfg, total_steps, sharing).train)`` (rollouts, GAE and
updates in one program) for IPPO and MAPPO at N = 3, 10, 100 agents. Compilation is done
first (``jax.jit(train).lower(key).compile()``) and reported separately; the compiled loop is
then run ``--repeats`` times and the best run gives env steps/s and agent steps/s
(env steps x N). The baseline is the same loop at N=3 IPPO, measured in the same run: every
row carries its throughput as a ratio to that row.

With ``--jaxmarl-python`` and ``--jaxmarl-src`` (JaxMARL's interpreter and repository checkout,
never a jmarl dependency: see benchmarks/README.md) the run also measures JaxMARL's own IPPO
(``baselines/IPPO/ippo_ff_mpe.py``, served by ``_jaxmarl_ippo.py`` in a subprocess) against
jmarl IPPO with the same hyper-parameters at N=3 and ``--jaxmarl-envs`` envs (16 64 256), the
same env steps on both sides, runs alternating between the two so that machine load hits both.
Without them the JSON says that the baseline was not run and why.

Run (about 6 minutes on 2 CPU cores, plus about 5 with JaxMARL; ``--quick`` checks the script
in under a minute)::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/train_throughput.py > train_throughput.json
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/train_throughput.py --jaxmarl-only \
        --jaxmarl-python /work/jaxmarl-venv/bin/python --jaxmarl-src /work/jaxmarl-src
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's jmarl first

import jax
import numpy as np
from _common import (
    arm_watchdog,
    compile_jit,
    emit,
    log,
    machine_info,
    ratio,
    start_side_helper,
    time_compiled,
)

import jmarl

# Env-step budgets of one timed run, chosen so that a full run of all six rows stays near
# 6 minutes on 2 cores (the cost of an env step grows roughly as N^2 for N agents).
# At N=100 one update (64 envs x 50 steps = 3,200 env steps) takes about 12 s.
FULL_STEPS = {3: 256_000, 10: 96_000, 100: 6_400}
QUICK_STEPS = {3: 1_024, 10: 512, 100: 128}
# Env steps of one timed run of the JaxMARL comparison, the same at every env count.
JAXMARL_STEPS, JAXMARL_QUICK_STEPS = 256_000, 2_048
JAXMARL_HELPER = Path(__file__).resolve().parent / "_jaxmarl_ippo.py"
RETURN_CHUNKS = 8  # the return curves are reported as means over this many equal chunks
RETURNS_NOTE = (
    "per-agent episode return (one agent's reward summed over an episode, mean over agents), "
    "mean over seeds, then over each chunk of updates. jmarl: episodes that ended in the "
    "update's rollout. JaxMARL: its logged returned_episode_returns / N (its log wrapper "
    "scales rewards by N; the value is the last finished episode's, averaged over the "
    "rollout's steps, so it lags by up to one episode and is 0 before the first one ends)"
)
DIFFERENCES = [
    "gradient clipping: jmarl clips actor and critic gradients to max_grad_norm separately, "
    "JaxMARL clips their joint global norm",
    "minibatches: jmarl shuffles (step, env) samples keeping the 3 agents together, JaxMARL "
    "shuffles single agent-steps; both use envs*steps*3/minibatches agent-steps per minibatch",
    "learning-rate annealing: jmarl decays linearly per gradient step, JaxMARL per update",
    "JaxMARL calls an io_callback (to wandb.log, stubbed to do nothing) after every update",
    "JaxMARL's env is its MPE_simple_spread_v3, jmarl's its own simple_spread (same dynamics "
    "and rewards, float32 both)",
]

REFERENCE_FIGURE = {
    "what": "JaxMARL 0.2.0 IPPO whole training loop, MPE simple_spread, 3 agents, 16-64 envs",
    "env_steps_per_s_low": 20_000,
    "env_steps_per_s_high": 47_000,
    "compile_s_low": 5,
    "compile_s_high": 20,
    "source": "shared/REFERENCE.md (2-core CPU of this kind, often under load)",
    "label": "reference figure, not measured here",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument(
        "--agents",
        type=int,
        nargs="+",
        help="default 3 10 100 (3 100 with --quick); 3 is always run",
    )
    parser.add_argument("--algos", nargs="+", default=["ippo", "mappo"], choices=jmarl.ALGORITHMS)
    parser.add_argument(
        "--sharing",
        default="shared",
        choices=jmarl.SHARING_MODES[:2],
        help="independent: see the XLA:CPU deadlock note in param_sharing.updates_loop",
    )
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--rollout-length", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies every row's env-step budget"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jaxmarl-python", help="JaxMARL's interpreter (its side venv)")
    parser.add_argument("--jaxmarl-src", help="JaxMARL repository checkout (baselines/IPPO)")
    parser.add_argument("--jaxmarl-envs", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--jaxmarl-steps", type=int, help=f"env steps per run (default {JAXMARL_STEPS:,})"
    )
    parser.add_argument(
        "--jaxmarl-only", action="store_true", help="skip the N-agent rows, compare only"
    )
    args = parser.parse_args()
    if args.jaxmarl_steps is None:
        args.jaxmarl_steps = JAXMARL_QUICK_STEPS if args.quick else JAXMARL_STEPS
    if args.quick:
        args.num_envs, args.rollout_length = 8, 16
        args.jaxmarl_envs = [8]
    if args.agents is None:
        args.agents = [3, 100] if args.quick else [3, 10, 100]
    return args


def ppo_config(algo: str, args: argparse.Namespace) -> jmarl.PPOConfig:
    """``PPOConfig`` defaults with the run's env count and rollout length, critic per ``algo``."""
    base = jmarl.PPOConfig(num_envs=args.num_envs, rollout_length=args.rollout_length)
    return jmarl.ppo_config_for(algo, base)


def measure_row(n: int, algo: str, total_steps: int, args: argparse.Namespace) -> dict[str, Any]:
    """Compiles and times one training loop; returns its row (without ratios)."""
    env = jmarl.make("simple_spread", num_agents=n)
    cfg = ppo_config(algo, args)
    trainer = jmarl.make_ppo(env, cfg, total_steps, args.sharing)
    key = jax.random.key(args.seed)
    log(f"[train_throughput] N={n} {algo}: compiling")
    compiled, compile_s = compile_jit(trainer.train, key)
    env_steps = trainer.num_updates * cfg.steps_per_update
    log(f"[train_throughput] N={n} {algo}: {args.repeats} runs of {env_steps} env steps")
    timing = time_compiled(compiled, (key,), args.repeats, warmup=0)
    sps = env_steps / timing.best_s
    log(f"[train_throughput] N={n} {algo}: {sps:,.0f} env steps/s, compile {compile_s:.1f}s")
    return {
        "algo": algo,
        "num_agents": n,
        "env_steps_per_run": env_steps,
        "num_updates": trainer.num_updates,
        "compile_s": compile_s,
        "run_s": timing.as_dict(),
        "env_steps_per_s": sps,
        "agent_steps_per_s": sps * n,
        "env_steps_per_s_median": env_steps / timing.median_s,
    }


def jaxmarl_config(cfg: jmarl.PPOConfig, total_steps: int) -> dict[str, Any]:
    """The config dict of JaxMARL's ``ippo_ff_mpe.make_train`` with ``cfg``'s numbers.

    JaxMARL's actor and critic are 64x64 MLPs with orthogonal init (as jmarl's defaults);
    it always clips the value loss and normalises advantages per minibatch (as ``cfg``).
    """
    if cfg.hidden_sizes != (64, 64) or not (cfg.clip_value and cfg.normalize_advantages):
        raise ValueError("JaxMARL's IPPO is fixed to 64x64 MLPs, value clipping, adv. norm")
    return {
        "ENV_NAME": "MPE_simple_spread_v3",
        "ENV_KWARGS": {},
        "NUM_ENVS": cfg.num_envs,
        "NUM_STEPS": cfg.rollout_length,
        "TOTAL_TIMESTEPS": total_steps,
        "UPDATE_EPOCHS": cfg.num_epochs,
        "NUM_MINIBATCHES": cfg.num_minibatches,
        "LR": cfg.lr,
        "ANNEAL_LR": cfg.anneal_lr,
        "GAMMA": cfg.gamma,
        "GAE_LAMBDA": cfg.gae_lambda,
        "CLIP_EPS": cfg.clip_eps,
        "ENT_COEF": cfg.ent_coef,
        "VF_COEF": cfg.vf_coef,
        "MAX_GRAD_NORM": cfg.max_grad_norm,
        "ACTIVATION": cfg.activation,
    }


def start_jaxmarl(args: argparse.Namespace) -> tuple[subprocess.Popen | None, dict[str, Any]]:
    """Starts the ``_jaxmarl_ippo.py`` server; returns it and its greeting, or None and why."""
    return start_side_helper(args.jaxmarl_python, args.jaxmarl_src, str(JAXMARL_HELPER))


def ask(proc: subprocess.Popen, request: dict[str, Any]) -> dict[str, Any]:
    """Sends one request line to the JaxMARL helper and reads its one-line answer."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the JaxMARL helper died (exit {proc.wait()})")
    return json.loads(line)


def return_curve(runs: list[list[float]], steps_per_update: int) -> dict[str, Any]:
    """Per-update returns of several seeds ``[R][U]`` -> seed mean per chunk of updates."""
    with warnings.catch_warnings():  # an update without a finished episode is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        per_update = np.nanmean(np.asarray(runs, np.float64), axis=0)
        chunks = np.array_split(np.arange(per_update.size), min(RETURN_CHUNKS, per_update.size))
        means = [float(np.nanmean(per_update[c])) for c in chunks]
    return {
        "env_steps_at_chunk_end": [int(c[-1] + 1) * steps_per_update for c in chunks],
        "mean_return": means,
        "final_return": float(per_update[-1]),
    }


def side_row(compile_s: float, runs_s: list[float], env_steps: int) -> dict[str, Any]:
    """Throughput facts of one side at one env count."""
    best, median = min(runs_s), float(np.median(runs_s))
    return {
        "compile_s": compile_s,
        "runs_s": runs_s,
        "env_steps_per_s": env_steps / best,
        "env_steps_per_s_median": env_steps / median,
    }


def run_jmarl(compiled: Any, seed: int) -> tuple[float, list[float]]:
    """One timed run of jmarl's compiled loop: seconds and per-update ``episode_return``."""
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(jax.random.key(seed)))
    run_s = time.perf_counter() - start
    return run_s, np.asarray(out.metrics["episode_return"], np.float64).tolist()


def compare_at(proc: subprocess.Popen, num_envs: int, args: argparse.Namespace) -> dict[str, Any]:
    """jmarl vs JaxMARL IPPO at ``num_envs``: both compiled and run once untimed, then
    ``--repeats`` seeds each, the side that runs first alternating from one seed to the next."""
    cfg = dataclasses.replace(ppo_config("ippo", args), num_envs=num_envs)
    trainer = jmarl.make_ppo(jmarl.make("simple_spread", num_agents=3), cfg, args.jaxmarl_steps)
    env_steps = trainer.num_updates * cfg.steps_per_update
    name = f"envs{num_envs}"
    log(f"[train_throughput] vs JaxMARL, {num_envs} envs: compiling both")
    compiled, jmarl_compile_s = compile_jit(trainer.train, jax.random.key(args.seed))
    request = {"op": "compile", "name": name, "config": jaxmarl_config(cfg, args.jaxmarl_steps)}
    answer = ask(proc, request)
    if answer["num_updates"] != trainer.num_updates:
        raise RuntimeError(f"update counts differ: {answer} vs {trainer.num_updates}")
    run_jmarl(compiled, args.seed)  # untimed warm-up of each side (first runs are slower)
    ask(proc, {"op": "run", "name": name, "seed": args.seed})
    runs: dict[str, list[float]] = {"jmarl": [], "jaxmarl": []}
    returns: dict[str, list[list[float]]] = {"jmarl": [], "jaxmarl": []}
    for r in range(args.repeats):
        seed = args.seed + r
        sides = ["jmarl", "jaxmarl"] if (r + num_envs) % 2 == 0 else ["jaxmarl", "jmarl"]
        for side in sides:
            if side == "jmarl":
                run_s, curve = run_jmarl(compiled, seed)
            else:
                reply = ask(proc, {"op": "run", "name": name, "seed": seed})
                run_s, curve = reply["run_s"], reply["returns"]
            runs[side].append(run_s)
            returns[side].append(curve)
        log(
            f"[train_throughput] {num_envs} envs seed {seed}: "
            + ", ".join(f"{k} {env_steps / v[-1]:,.0f}/s" for k, v in runs.items())
        )
    jm = side_row(jmarl_compile_s, runs["jmarl"], env_steps)
    jx = side_row(answer["compile_s"], runs["jaxmarl"], env_steps)
    return {
        "num_envs": num_envs,
        "num_updates": trainer.num_updates,
        "env_steps_per_run": env_steps,
        "jmarl": {**jm, "returns": return_curve(returns["jmarl"], cfg.steps_per_update)},
        "jaxmarl": {**jx, "returns": return_curve(returns["jaxmarl"], cfg.steps_per_update)},
        "ratio_env_steps_per_s": ratio(jm["env_steps_per_s"], jx["env_steps_per_s"]),
        "ratio_env_steps_per_s_median": ratio(
            jm["env_steps_per_s_median"], jx["env_steps_per_s_median"]
        ),
        "ratio_compile_s": ratio(jm["compile_s"], jx["compile_s"]),
    }


def compare_jaxmarl(args: argparse.Namespace) -> dict[str, Any]:
    """The JaxMARL section of the JSON: one :func:`compare_at` row per ``--jaxmarl-envs``."""
    proc, greeting = start_jaxmarl(args)
    if proc is None:
        return {"run": False, **greeting}
    try:
        rows = [compare_at(proc, e, args) for e in args.jaxmarl_envs]
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            proc.stdin.close()
        proc.wait()
    ratios = [row["ratio_env_steps_per_s"] for row in rows]
    return {
        "run": True,
        "helper": greeting,
        "jaxmarl_file": "baselines/IPPO/ippo_ff_mpe.py (unchanged; wandb stubbed)",
        "num_agents": 3,
        "env_steps_per_run": args.jaxmarl_steps,
        "seeds": [args.seed + r for r in range(args.repeats)],
        "throughput_from": "best run per side; *_median from the median run",
        "ratio": "jmarl / JaxMARL",
        "ratio_env_steps_per_s_geomean": math.exp(np.mean(np.log(ratios))) if rows else None,
        "returns": RETURNS_NOTE,
        "differences": DIFFERENCES,
        "rows": rows,
    }


def measure_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The N-agent rows, each with its throughput as a ratio to the first (N=3 IPPO)."""
    budgets = QUICK_STEPS if args.quick else FULL_STEPS
    agents = [3] + [n for n in dict.fromkeys(args.agents) if n != 3]
    algos = ["ippo"] + [a for a in dict.fromkeys(args.algos) if a != "ippo"]
    rows = []
    for n in agents:
        default = max(1, int(budgets[3] * (3 / n) ** 2))  # an N not listed: cost ~ N^2
        steps = max(1, int(budgets.get(n, default) * args.scale))
        for algo in algos:
            rows.append(measure_row(n, algo, steps, args))
    reference = rows[0]
    for row in rows:
        row["env_steps_per_s_vs_baseline"] = ratio(
            row["env_steps_per_s"], reference["env_steps_per_s"]
        )
        row["agent_steps_per_s_vs_baseline"] = ratio(
            row["agent_steps_per_s"], reference["agent_steps_per_s"]
        )
    return rows


def main() -> None:
    args = parse_args()
    arm_watchdog(240 if args.quick else 3600)
    info = machine_info()
    rows = [] if args.jaxmarl_only else measure_rows(args)
    emit(
        {
            "benchmark": "train_throughput",
            "quick": args.quick,
            **info,
            "env": "jmarl simple_spread (25-step episodes)",
            "config": {
                "sharing": args.sharing,
                "num_envs": args.num_envs,
                "rollout_length": args.rollout_length,
                "repeats": args.repeats,
                "throughput_from": "best run; env_steps_per_s_median from the median run",
            },
            "ppo_config_ippo": dataclasses.asdict(ppo_config("ippo", args)),
            "baseline": "this loop at N=3, ippo (first row), measured in this run",
            "rows": rows,
            "jaxmarl_ippo": compare_jaxmarl(args),
            "reference_figure_jaxmarl_ippo": REFERENCE_FIGURE,
        }
    )


if __name__ == "__main__":
    main()
