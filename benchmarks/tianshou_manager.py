"""Collection throughput of jmarl's Tianshou policy manager vs Tianshou's own multi-agent policy.

mpe2 ``simple_spread_v3`` with N agents (default 20, ``max_cycles`` 25, discrete actions), a
Tianshou ``Collector`` over a ``DummyVectorEnv`` of ``--envs`` envs with a small
``VectorReplayBuffer``, randomly initialised policies in inference mode (outside a training
step: greedy DQN, sampled JAX actions). Each variant collects the same number of agent-steps
(one agent acting once) and the best of ``--repeats`` timed collects gives its rate; one untimed
collect first warms it up (JIT compilation of the JAX policy included).

(1) ``manager_shared_dqn``: ``bridge.FlexibleMultiAgentPolicyManager`` in parallel mode
    (``bridge.EnhancedPettingZooEnv(parallel_env)``) with ONE torch DQN (64x64 MLP),
    ``mode="shared"``: one batched forward per collector step for all agents of all envs.
    A collector step is one parallel env step = N agent-steps per env.
(2) ``tianshou_marl_dqn``: Tianshou's ``MultiAgentOffPolicyAlgorithm`` with N per-agent DQNs
    (same MLP) on ``tianshou.env.PettingZooEnv(simple_spread_v3.env(...))`` (AEC). A collector
    step is one AEC step = 1 agent-step per env, so it collects N times as many collector steps.
(3) ``jax_policy_direct``: a ``bridge.JaxPolicy`` (jmarl IPPO actor-critic, 64x64 MLP, shared
    parameters) wrapped in ``JaxPPO`` and given straight to the Collector in parallel mode.

Ratios: (1)/(2) (target >= 3) and (3)/(1). Torch uses 1 thread.

At N=20 the bare mpe2 env (pure-Python physics, O(N^2) collision checks) costs far more than
any policy forward, so all three rates sit near the env's own ceiling. The script therefore also
times the bare envs under random actions (``raw_env_ceiling``, both forms, no Tianshou) and
reports each variant's overhead per agent-step above its env (``overhead_us_per_agent_step``:
policy forwards, wrappers, collector and buffer bookkeeping) and the ratio of those overheads.

Run (about 3 minutes on 2 CPU cores; ``--quick`` checks the script in well under a minute)::

    JAX_PLATFORMS=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tianshou_manager.py \\
        > tianshou_manager.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from _common import Timing, arm_watchdog, emit, log, machine_info, ratio
from mpe2 import simple_spread_v3
from tianshou.algorithm import DQN
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.multiagent.marl import MultiAgentOffPolicyAlgorithm
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector, CollectStats, VectorReplayBuffer
from tianshou.env import DummyVectorEnv, PettingZooEnv
from tianshou.utils.net.common import Net

import jmarl
from bridge.jax_policy import JaxPolicy, JaxPPO
from bridge.pettingzoo_env import EnhancedPettingZooEnv
from bridge.tianshou_manager import FlexibleMultiAgentPolicyManager

torch.set_num_threads(1)

HIDDEN = (64, 64)
MAX_CYCLES = 25
# env steps (all N agents acting once), summed over the vector envs, per timed collect
QUICK = {"env_steps": 200, "repeats": 2}
FULL = {"env_steps": 1000, "repeats": 3}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument("--agents", type=int, default=20, help="N of simple_spread_v3")
    parser.add_argument("--envs", type=int, default=4, help="envs in the DummyVectorEnv")
    parser.add_argument(
        "--env-steps", type=int, default=None, help="env steps per timed collect (all envs)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed collects per variant")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    args.env_steps = args.env_steps or sizes["env_steps"]
    args.repeats = args.repeats or sizes["repeats"]
    return args


def parallel_env(n: int) -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(simple_spread_v3.parallel_env(N=n, max_cycles=MAX_CYCLES))


def aec_env(n: int) -> PettingZooEnv:
    return PettingZooEnv(simple_spread_v3.env(N=n, max_cycles=MAX_CYCLES))


def torch_dqn(obs_dim: int, actions: Any) -> DQN:
    net = Net(state_shape=obs_dim, action_shape=actions.n, hidden_sizes=list(HIDDEN))
    policy = DiscreteQLearningPolicy(
        model=net, action_space=actions, eps_training=0.1, eps_inference=0.0
    )
    return DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3))


def make_collector(algorithm: Any, make: Callable[[], Any], envs: int) -> Collector:
    venv = DummyVectorEnv([make] * envs)
    venv.seed(0)
    col = Collector[CollectStats](algorithm, venv, VectorReplayBuffer(envs * 200, envs))
    col.reset()
    return col


def measure(
    name: str, col: Collector, collector_steps: int, agents_per_step: int, repeats: int
) -> dict[str, Any]:
    """Best-of-``repeats`` agent-steps/s of ``col.collect(n_step=collector_steps)``."""
    log(f"[{name}] warm-up collect of {collector_steps} collector steps")
    start = time.perf_counter()
    col.collect(n_step=collector_steps)
    warmup_s = time.perf_counter() - start
    runs, collected = [], 0
    for r in range(repeats):
        start = time.perf_counter()
        stats = col.collect(n_step=collector_steps)
        runs.append(time.perf_counter() - start)
        collected = stats.n_collected_steps
        log(f"[{name}] run {r}: {collected} collector steps in {runs[-1]:.2f}s")
    timing = Timing(tuple(runs))
    agent_steps = collected * agents_per_step
    return {
        "collector_steps_per_run": collected,
        "agent_steps_per_run": agent_steps,
        "agent_steps_per_s": agent_steps / timing.best_s,
        "warmup_s": warmup_s,
        **timing.as_dict(),
    }


def manager_shared_dqn(args: argparse.Namespace) -> dict[str, Any]:
    n = args.agents
    env = parallel_env(n)
    algo = torch_dqn(env.padded_observation_space.shape[0], env.padded_action_space)
    manager = FlexibleMultiAgentPolicyManager(algo, env, mode="shared")
    col = make_collector(manager, lambda: parallel_env(n), args.envs)
    # a parallel collector step moves every env one step: N agent-steps per env
    return measure("manager", col, args.env_steps, n, args.repeats)


def tianshou_marl_dqn(args: argparse.Namespace) -> dict[str, Any]:
    n = args.agents
    env = aec_env(n)
    algos = [torch_dqn(env.observation_space.shape[0], env.action_space) for _ in range(n)]
    marl = MultiAgentOffPolicyAlgorithm(algorithms=algos, env=env)
    col = make_collector(marl, lambda: aec_env(n), args.envs)
    # an AEC collector step is one agent acting: N times the collector steps of (1)
    return measure("tianshou", col, args.env_steps * n, 1, args.repeats)


def jax_policy_direct(args: argparse.Namespace) -> dict[str, Any]:
    n = args.agents
    cfg = jmarl.ppo_config_for("ippo", jmarl.PPOConfig(hidden_sizes=HIDDEN))
    algo = JaxPPO(policy=JaxPolicy.from_env(parallel_env(n), cfg, seed=0), seed=0)
    col = make_collector(algo, lambda: parallel_env(n), args.envs)
    return measure("jax", col, args.env_steps, n, args.repeats)


def raw_env_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Agent-steps/s of the bare mpe2 envs under random actions, no Tianshou: the ceiling of
    every variant (parallel form for (1) and (3), AEC form for (2))."""
    n, steps = args.agents, args.env_steps
    out: dict[str, Any] = {}
    for form in ("parallel", "aec"):
        make = simple_spread_v3.parallel_env if form == "parallel" else simple_spread_v3.env
        env = make(N=n, max_cycles=MAX_CYCLES)
        runs = []
        for _ in range(args.repeats):
            env.reset(seed=0)
            start = time.perf_counter()
            done = 0
            while done < steps * n:
                if form == "parallel":
                    if not env.agents:
                        env.reset()
                    env.step({a: env.action_space(a).sample() for a in env.agents})
                    done += n
                else:
                    if not env.agents:
                        env.reset()
                    agent = env.agent_selection
                    if env.terminations[agent] or env.truncations[agent]:
                        env.step(None)
                        continue
                    env.step(env.action_space(agent).sample())
                    done += 1
            runs.append(time.perf_counter() - start)
        timing = Timing(tuple(runs))
        out[form] = {"agent_steps_per_s": steps * n / timing.best_s, **timing.as_dict()}
        log(f"[raw env {form}] {out[form]['agent_steps_per_s']:.0f} agent-steps/s")
    return out


def overhead_us(rate: float | None, ceiling: float | None) -> float | None:
    """Microseconds per agent-step spent outside the bare env (policy, wrappers, collector)."""
    if rate is None or ceiling is None:
        return None
    return 1e6 * (1 / rate - 1 / ceiling)


def run_variant(fn: Callable[[argparse.Namespace], dict[str, Any]], args: Any) -> dict[str, Any]:
    try:
        return fn(args)
    except Exception as error:  # a variant that breaks is reported, not fatal
        log(f"[{fn.__name__}] failed: {error!r}")
        return {"error": repr(error), "agent_steps_per_s": None}


def main() -> None:
    args = parse_args()
    arm_watchdog(120 if args.quick else 600)
    info = machine_info()
    log(f"N={args.agents}, {args.envs} envs, {args.env_steps} env steps per run")
    results = {
        "manager_shared_dqn": run_variant(manager_shared_dqn, args),
        "tianshou_marl_dqn": run_variant(tianshou_marl_dqn, args),
        "jax_policy_direct": run_variant(jax_policy_direct, args),
    }
    ceiling = raw_env_ceiling(args)
    rate = {k: v["agent_steps_per_s"] for k, v in results.items()}
    par, aec = ceiling["parallel"]["agent_steps_per_s"], ceiling["aec"]["agent_steps_per_s"]
    over = {
        "manager_shared_dqn": overhead_us(rate["manager_shared_dqn"], par),
        "tianshou_marl_dqn": overhead_us(rate["tianshou_marl_dqn"], aec),
        "jax_policy_direct": overhead_us(rate["jax_policy_direct"], par),
    }
    emit(
        {
            "benchmark": "tianshou_manager",
            "quick": args.quick,
            "machine": {**info, "torch_version": torch.__version__, "torch_threads": 1},
            "setup": {
                "env": "mpe2 simple_spread_v3 (discrete)",
                "agents": args.agents,
                "max_cycles": MAX_CYCLES,
                "vector_envs": f"DummyVectorEnv x {args.envs}",
                "env_steps_per_run": args.env_steps,
                "agent_steps_per_run": args.env_steps * args.agents,
                "repeats": args.repeats,
                "hidden_sizes": list(HIDDEN),
                "unit": "agent-step = one agent acting once (parallel step = N, AEC step = 1)",
                "policies": "randomly initialised, inference mode (outside a training step)",
            },
            "results": results,
            "raw_env_ceiling": ceiling,
            "overhead_us_per_agent_step": over,
            "ratios": {
                "manager_over_tianshou": ratio(
                    rate["manager_shared_dqn"], rate["tianshou_marl_dqn"]
                ),
                "manager_over_tianshou_target": 3.0,
                "jax_over_manager": ratio(rate["jax_policy_direct"], rate["manager_shared_dqn"]),
                "tianshou_overhead_over_manager_overhead": ratio(
                    over["tianshou_marl_dqn"], over["manager_shared_dqn"]
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
