"""Throughput of jmarl's whole jitted PPO training loop on simple_spread.

Times ``jax.jit(jmarl.make_ppo(env, cfg, total_steps, sharing).train)`` (rollouts, GAE and
updates in one program) for IPPO and MAPPO at N = 3, 10, 100 agents. Compilation is done
first (``jax.jit(train).lower(key).compile()``) and reported separately; the compiled loop is
then run ``--repeats`` times and the best run gives env steps/s and agent steps/s
(env steps x N). The baseline is the same loop at N=3 IPPO, measured in the same run: every
row carries its throughput as a ratio to that row. JaxMARL's IPPO figure from
``shared/REFERENCE.md`` is quoted as a constant, not measured here.

Run (about 6 minutes on 2 CPU cores; ``--quick`` checks the script in under a minute)::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/train_throughput.py > train_throughput.json
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import jax
from _common import arm_watchdog, compile_jit, emit, log, machine_info, ratio, time_compiled

import jmarl

# Env-step budgets of one timed run, chosen so that a full run of all six rows stays near
# 6 minutes on 2 cores (the cost of an env step grows roughly as N^2 for N agents).
# At N=100 one update (64 envs x 50 steps = 3,200 env steps) takes about 12 s.
FULL_STEPS = {3: 256_000, 10: 96_000, 100: 6_400}
QUICK_STEPS = {3: 1_024, 10: 512, 100: 128}

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
    args = parser.parse_args()
    if args.quick:
        args.num_envs, args.rollout_length = 8, 16
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


def main() -> None:
    args = parse_args()
    arm_watchdog(240 if args.quick else 1800)
    budgets = QUICK_STEPS if args.quick else FULL_STEPS
    agents = [3] + [n for n in dict.fromkeys(args.agents) if n != 3]
    algos = ["ippo"] + [a for a in dict.fromkeys(args.algos) if a != "ippo"]
    info = machine_info()
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
            "reference_figure_jaxmarl_ippo": REFERENCE_FIGURE,
        }
    )


if __name__ == "__main__":
    main()
