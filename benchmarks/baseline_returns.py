"""Returns of trivial policies on simple_spread (3 agents, 25 steps): learning tests' floor.

A learning test on simple_spread is only informative if its bar lies above what a policy that
learned nothing scores. This script measures, per policy, the per-agent episode return (one
agent's reward summed over the episode, then the mean over agents): its mean, standard
deviation over episodes, standard error of the mean and episode count, for

* ``random``: uniform random discrete actions;
* ``noop``: action 0 every step (mpe2's discrete action 0 sets no force, ``u = 0``; 1..4 push
  along -x, +x, -y, +y, see ``mpe2._mpe_utils.simple_env.SimpleEnv._set_action``);
* ``const_1`` .. ``const_4``: one fixed move every step (agents drift away: all worse);
* ``scripted``: ``jmarl.env.mpe.simple_spread.scripted_landmark_policy`` (agent ``i`` heads for
  landmark ``i``), a reference for what a simple competent policy scores;

on two envs:

* ``mpe2``: ``mpe2.simple_spread_v3.parallel_env(N=3, max_cycles=25)``, the env of the
  Tianshou / bridge tests; episode ``i`` is reset with ``seed=i``;
* ``jmarl``: ``jmarl.make("simple_spread", num_agents=3)`` (25 steps), all episodes in one
  jitted program.

Run from the repository root (about 5 minutes on 2 CPU cores; ``--quick`` checks the script)::

    OMP_NUM_THREADS=1 JAX_PLATFORMS=cpu .venv/bin/python benchmarks/baseline_returns.py \
        --out benchmarks/results/baseline_returns.json

The JSON object goes to stdout (and to ``--out``); its ``command`` field is the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _common import _clean, arm_watchdog, log, machine_info

import jmarl
from jmarl.env.mpe.simple_spread import scripted_landmark_policy

NUM_AGENTS, EPISODE_STEPS, NUM_ACTIONS = 3, 25, 5
_scripted = jax.jit(scripted_landmark_policy)
POLICIES = ("random", "noop", "const_1", "const_2", "const_3", "const_4", "scripted")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument("--mpe2-episodes", type=int, default=4000, help="episodes per policy")
    parser.add_argument("--jmarl-episodes", type=int, default=100_000, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the JSON object to this file")
    args = parser.parse_args()
    if args.quick:
        args.mpe2_episodes, args.jmarl_episodes = 40, 1000
    return args


def command_line() -> str:
    """The command that ran this script, with the environment variables that matter."""
    env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "JAX_PLATFORMS") if k in os.environ]
    python = os.path.relpath(sys.executable) if sys.executable else "python"
    return shlex.join([*env, python, *sys.argv]) if env else shlex.join([python, *sys.argv])


def summary(returns: np.ndarray) -> dict[str, Any]:
    """Mean, std (ddof=1), standard error and count of per-episode returns."""
    returns = np.asarray(returns, np.float64)
    std = float(returns.std(ddof=1))
    return {
        "mean": float(returns.mean()),
        "std": std,
        "se": std / np.sqrt(returns.size),
        "episodes": int(returns.size),
    }


# --- mpe2 (host, one episode at a time) ------------------------------------------------------


def mpe2_actions(policy: str, obs: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``int[N]`` discrete actions of ``policy`` for one step."""
    if policy == "random":
        return rng.integers(NUM_ACTIONS, size=NUM_AGENTS)
    if policy == "scripted":
        stacked = np.stack([obs[f"agent_{i}"] for i in range(NUM_AGENTS)]).astype(np.float32)
        return np.asarray(_scripted(stacked))
    action = 0 if policy == "noop" else int(policy.split("_")[1])
    return np.full(NUM_AGENTS, action)


def mpe2_returns(policy: str, episodes: int, seed: int) -> np.ndarray:
    """Per-agent return of each of ``episodes`` episodes, episode ``i`` reset with ``seed=i``."""
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(N=NUM_AGENTS, max_cycles=EPISODE_STEPS)
    agents = env.possible_agents
    rng = np.random.default_rng(seed)
    out = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=i)
        total, steps = np.zeros(NUM_AGENTS), 0
        while env.agents:
            act = mpe2_actions(policy, obs, rng)
            obs, rew, _, _, _ = env.step({a: int(act[k]) for k, a in enumerate(agents)})
            total += [rew[a] for a in agents]
            steps += 1
        assert steps == EPISODE_STEPS, steps
        out[i] = total.mean()
    env.close()
    return out


# --- jmarl (one jitted program per policy) ----------------------------------------------------


def jmarl_policy(policy: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(key, obs [E, N, 18]) -> int32[E, N]``."""
    if policy == "random":
        return lambda key, obs: jax.random.randint(key, obs.shape[:2], 0, NUM_ACTIONS)
    if policy == "scripted":
        return lambda key, obs: scripted_landmark_policy(obs)
    action = 0 if policy == "noop" else int(policy.split("_")[1])
    return lambda key, obs: jnp.full(obs.shape[:2], action, jnp.int32)


def jmarl_returns(policy: str, episodes: int, seed: int) -> np.ndarray:
    """Per-agent return of ``episodes`` episodes played side by side (one per env)."""
    env = jmarl.make("simple_spread", num_agents=NUM_AGENTS, max_steps=EPISODE_STEPS)
    act = jmarl_policy(policy)

    @jax.jit
    def run(key: jax.Array) -> jax.Array:
        k_reset, k_run = jax.random.split(key)
        state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))

        def step(carry: tuple, key: jax.Array) -> tuple[tuple, None]:
            state, ts, total, running = carry
            k_act, k_env = jax.random.split(key)
            action = act(k_act, ts.obs)
            state, ts = jax.vmap(env.step)(jax.random.split(k_env, episodes), state, action)
            total = total + running[:, None] * ts.reward
            return (state, ts, total, running & ~ts.done), None

        carry = (state, ts, jnp.zeros((episodes, NUM_AGENTS)), jnp.ones(episodes, bool))
        (_, _, total, running), _ = jax.lax.scan(
            step, carry, jax.random.split(k_run, EPISODE_STEPS)
        )
        return jnp.where(running.any(), jnp.nan, total.mean(axis=-1))  # all episodes ended

    return np.asarray(run(jax.random.key(seed)))


def main() -> None:
    args = parse_args()
    arm_watchdog(1800)
    result: dict[str, Any] = {
        "command": command_line(),
        "machine": machine_info(),
        "setting": {"num_agents": NUM_AGENTS, "episode_steps": EPISODE_STEPS},
        "return": "per-agent episode return: one agent's rewards summed, mean over agents",
        "mpe2": {"env": "mpe2.simple_spread_v3.parallel_env(N=3, max_cycles=25)"},
        "jmarl": {"env": "jmarl.make('simple_spread', num_agents=3, max_steps=25)"},
    }
    for name, measure, episodes in (
        ("jmarl", jmarl_returns, args.jmarl_episodes),
        ("mpe2", mpe2_returns, args.mpe2_episodes),
    ):
        for policy in POLICIES:
            start = time.perf_counter()
            stats = summary(measure(policy, episodes, args.seed))
            log(f"{name} {policy}: {stats} in {time.perf_counter() - start:.1f} s")
            result[name][policy] = stats
    trivial = ("random", "noop", "const_1", "const_2", "const_3", "const_4")
    result["best_trivial_policy"] = {
        name: max(trivial, key=lambda p, name=name: result[name][p]["mean"])
        for name in ("mpe2", "jmarl")
    }
    text = json.dumps(_clean(result), indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
