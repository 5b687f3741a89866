"""Parameter sharing at N=10: what it saves, and whether it learns as well.

Ten identical agents on jmarl's ``simple_spread`` (N=10), MAPPO with the same ``PPOConfig``,
once with ``sharing="shared"`` (one policy and critic for all agents) and once with
``sharing="independent"`` (one each, stacked). The baseline of every ratio is the independent
run, measured in the same run:

(a) ``train_state_bytes``: bytes of parameters plus optimizer state in the
    ``learner`` state that ``trainer.init`` returns (target: shared <= 0.2x);
(b) ``step_memory``: XLA's memory analysis of the compiled train step
    (``jax.jit(trainer.step).lower(runner).compile().memory_analysis()``), temp + argument +
    output bytes; reported as None where the backend gives no analysis;
(c) ``learning``: both train for the same env-step budget on the same seeds, all seeds in one
    program (``jax.vmap`` over ``trainer.init``, then over the scan of ``trainer.step`` that
    ``trainer.train`` runs; see ``updates_loop``); each one's improvement is its final per-agent
    return (mean of the last 10% of updates, then over seeds) minus the per-agent return of
    uniform random actions, measured here on the same env; the claim is
    ``shared_improvement / independent_improvement`` (target >= 0.9).

Run (under 6 minutes on 2 CPU cores; ``--quick`` checks the script in under a minute)::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/param_sharing.py > param_sharing.json
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    arm_watchdog,
    compile_jit,
    emit,
    log,
    machine_info,
    memory_stats,
    ratio,
    tree_bytes,
)

import jmarl

MODES = ("shared", "independent")
ALGO = "mappo"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument("--num-agents", type=int, default=10)
    parser.add_argument("--steps", type=int, default=480_000, help="env steps per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--rollout-length", type=int, default=50)
    parser.add_argument(
        "--gamma", type=float, default=0.9, help="discount (0.9: the CLI's tuned default run)"
    )
    parser.add_argument("--random-envs", type=int, default=1024, help="envs of the random rollout")
    parser.add_argument("--random-episodes", type=int, default=4)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.num_envs, args.rollout_length = 1_024, 2, 8, 32
        args.random_envs, args.random_episodes = 64, 1
    return args


def random_return(env: jmarl.Env, key: jax.Array, num_envs: int, episodes: int) -> float:
    """Per-agent return of uniform random actions (mean over agents, envs and episodes).

    Episodes end only by truncation after ``max_steps`` steps and the env auto-resets, so
    ``episodes * max_steps`` steps from a reset are exactly ``episodes`` whole episodes.
    """
    n, num_actions = env.spec.num_agents, env.spec.action_space.n
    step = jax.vmap(env.step)

    def body(carry: tuple[Any, jax.Array, jax.Array], _: None) -> tuple[Any, None]:
        state, key, total = carry
        key, k_act, k_env = jax.random.split(key, 3)
        actions = jax.random.randint(k_act, (num_envs, n), 0, num_actions)
        state, ts = step(jax.random.split(k_env, num_envs), state, actions)
        return (state, key, total + ts.reward), None

    @jax.jit
    def run(key: jax.Array) -> jax.Array:
        k_reset, k_run = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))
        carry = (state, k_run, jnp.zeros((num_envs, n), jnp.float32))
        length = episodes * env.spec.max_steps
        (_, _, total), _ = jax.lax.scan(body, carry, None, length=length)
        return jnp.mean(total) / episodes

    return float(run(key))


def final_returns(episode_return: np.ndarray) -> np.ndarray:
    """``[K, U]`` per-update returns -> ``[K]`` means over each seed's last 10% of updates."""
    window = max(1, episode_return.shape[1] // 10)
    return np.nanmean(episode_return[:, -window:], axis=1)


def updates_loop(trainer: jmarl.Trainer) -> Callable[[Any], dict[str, jax.Array]]:
    """``trainer.train`` without its ``init``: ``num_updates`` steps from a given runner.

    ``trainer.train`` is ``init`` followed by exactly this scan. Initialising in a separate
    program keeps the batched QR of the independent policies' orthogonal init (a LAPACK custom
    call) out of the training program: on XLA:CPU with jaxlib 0.10.2 the two together
    intermittently deadlock (all threads idle in ``block_until_ready``).
    """

    def run(runner: Any) -> dict[str, jax.Array]:
        _, metrics = jax.lax.scan(
            lambda r, _: trainer.step(r), runner, None, length=trainer.num_updates
        )
        return metrics

    return run


def improvement_ratio(shared: float, independent: float) -> float | str:
    """``shared / independent`` improvement, or why it is undefined (baseline did not improve)."""
    if not independent > 0:
        return f"undefined: independent did not beat random play ({independent:+.3g})"
    return shared / independent


def measure_mode(
    env: jmarl.Env, cfg: jmarl.PPOConfig, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Train-state bytes, compiled step memory and a multi-seed training run for ``mode``."""
    trainer = jmarl.make_ppo(env, cfg, args.steps, sharing=mode)
    runner = jax.jit(trainer.init)(jax.random.key(0))
    ts = runner.learner
    log(f"[param_sharing] {mode}: compiling one train step")
    step_compiled, step_compile_s = compile_jit(trainer.step, runner)
    keys = jax.random.split(jax.random.key(1), args.seeds)
    log(f"[param_sharing] {mode}: compiling {trainer.num_updates} updates x {args.seeds} seeds")
    runners = jax.block_until_ready(jax.jit(jax.vmap(trainer.init))(keys))
    train_compiled, train_compile_s = compile_jit(jax.vmap(updates_loop(trainer)), runners)
    env_steps = trainer.num_updates * cfg.steps_per_update
    log(f"[param_sharing] {mode}: training {args.seeds} seeds x {env_steps} env steps")
    start = time.perf_counter()
    metrics = jax.block_until_ready(train_compiled(runners))
    train_s = time.perf_counter() - start
    returns = np.asarray(metrics["episode_return"])  # [K, U]
    final = final_returns(returns)
    log(f"[param_sharing] {mode}: final per-agent return {final.mean():.2f} ({train_s:.0f}s)")
    return {
        "param_bytes": tree_bytes(ts.params),
        "opt_state_bytes": tree_bytes(ts.opt_state),
        "train_state_bytes": tree_bytes(ts),
        "step_memory": memory_stats(step_compiled),
        "step_compile_s": step_compile_s,
        "train_compile_s": train_compile_s,
        "train_s": train_s,
        "env_steps_per_seed": env_steps,
        "num_updates": trainer.num_updates,
        "first_return_per_seed": returns[:, 0].tolist(),
        "final_return_per_seed": final.tolist(),
        "final_return": float(final.mean()),
    }


def main() -> None:
    args = parse_args()
    arm_watchdog(240 if args.quick else 1800)
    info = machine_info()
    env = jmarl.make("simple_spread", num_agents=args.num_agents)
    base = jmarl.PPOConfig(
        num_envs=args.num_envs, rollout_length=args.rollout_length, gamma=args.gamma
    )
    cfg = jmarl.ppo_config_for(ALGO, base)
    log("[param_sharing] random-policy rollout")
    rand = random_return(env, jax.random.key(2), args.random_envs, args.random_episodes)
    results = {mode: measure_mode(env, cfg, mode, args) for mode in MODES}
    for res in results.values():
        res["improvement_per_seed"] = [r - rand for r in res["final_return_per_seed"]]
        res["improvement"] = res["final_return"] - rand
    shared, indep = results["shared"], results["independent"]
    emit(
        {
            "benchmark": "param_sharing",
            "quick": args.quick,
            **info,
            "env": f"jmarl simple_spread, {args.num_agents} identical agents, 25-step episodes",
            "algo": ALGO,
            "config": {
                "num_envs": args.num_envs,
                "rollout_length": args.rollout_length,
                "env_steps_per_seed": args.steps,
                "seeds": args.seeds,
            },
            "ppo_config": dataclasses.asdict(cfg),
            "baseline": "sharing='independent', same config, steps and seeds, measured in this run",
            "random_return": rand,
            "random_return_from": f"{args.random_envs} envs x {args.random_episodes} episodes",
            "shared": shared,
            "independent": indep,
            "train_state_bytes_ratio": ratio(
                shared["train_state_bytes"], indep["train_state_bytes"]
            ),
            "train_state_bytes_target": "<= 0.2",
            "step_memory_ratio": ratio(
                shared["step_memory"].get("total_bytes"), indep["step_memory"].get("total_bytes")
            ),
            "train_time_ratio": ratio(shared["train_s"], indep["train_s"]),
            "improvement_ratio": improvement_ratio(shared["improvement"], indep["improvement"]),
            "improvement_target": ">= 0.9",
        }
    )


if __name__ == "__main__":
    main()
