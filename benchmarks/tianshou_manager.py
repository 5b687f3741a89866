"""Throughput of jmarl's Tianshou policy manager vs Tianshou's own multi-agent algorithm.

mpe2 ``simple_spread_v3`` with N agents (default 20, ``max_cycles`` 25, discrete actions), or
``--env pistonball`` (``pistonball_v6``, N pistons, discrete actions, pixel observations), a
Tianshou ``Collector`` over ``--envs`` envs, torch with one thread. The unit is the agent-step
(one agent acting once: a parallel step is N, an AEC step is 1).

Variants, all with the same 64x64 MLP per policy:

(1) ``manager``: ``bridge.FlexibleMultiAgentPolicyManager`` in parallel mode
    (``bridge.EnhancedPettingZooEnv(parallel_env, include_state=False)``: no variant reads the
    global state) with ONE torch DQN, ``mode="shared"``: one batched forward per collector
    step for all agents of all envs, one update over all agents.
(2) ``tianshou`` (baseline): Tianshou's ``MultiAgentOffPolicyAlgorithm`` with N per-agent DQNs
    on ``tianshou.env.PettingZooEnv(env(...))`` (AEC, as Tianshou requires).
(3) ``jax_policy``: a ``bridge.JaxPolicy`` (jmarl IPPO actor, shared parameters) wrapped in
    ``JaxPPO`` and given straight to the Collector in parallel mode (simple_spread only: on
    pistonball jmarl would encode the images with a CNN, not the same MLP).

Two measurements, each the best of ``--repeats`` timed runs after an untimed warm-up:

* ``collect``: inference only (greedy DQN, sampled JAX actions), randomly initialised policies;
  agent-steps/s of ``Collector.collect``. The bare envs' random-action rate is timed too
  (``raw_env_ceiling``) with each variant's overhead per agent-step above its env.
* ``train``: measured twice (``--vectors``), with the envs stepped in the main process
  (``DummyVectorEnv``) and in worker processes (``SubprocVectorEnv``, one spawned process per
  env), both variants on the same kind (pistonball: ``DummyVectorEnv`` only by default). A DQN
  training run as Tianshou's off-policy trainer does it -- collect 10 env steps per env
  (epsilon 0.1), then 0.1 gradient steps per env step (4 envs: 4 gradient steps), each on 64
  sampled transitions per agent (manager: one sample of 64*N for the shared DQN; Tianshou: one
  sample of 64*N AEC rows, which it splits by agent, about 64 per DQN), targets synced every
  100 gradient steps. The replay ratio (samples per agent-step) is therefore the same;
  agent-steps/s counts collected agent-steps over the wall time of collecting and updating.
  Beside it, the main process's CPU time per agent-step (with ``SubprocVectorEnv`` that is the
  part more cores cannot spread: the policies, the collector, the updates, the pipes to the
  workers).

``collect`` and the bare envs use ``DummyVectorEnv`` (no worker processes).

Ratios: ``manager / tianshou`` for ``collect`` and for ``train`` on each vector env kind (target
>= 3), ``train_best_over_best`` (each side's faster vector env kind), ``jax_policy / manager``
(collect).

Run (simple_spread: about 7 minutes on 2 CPU cores; ``--quick`` checks the script in about two
minutes, pistonball's in about four)::

    JAX_PLATFORMS=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tianshou_manager.py \\
        > tianshou_manager.json
"""

from __future__ import annotations

import argparse
import logging
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
from pettingzoo.butterfly import pistonball_v6
from tianshou.algorithm import DQN
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.multiagent.marl import MultiAgentOffPolicyAlgorithm
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector, CollectStats, VectorReplayBuffer
from tianshou.env import DummyVectorEnv, PettingZooEnv, SubprocVectorEnv
from tianshou.utils.net.common import Net
from tianshou.utils.torch_utils import policy_within_training_step

import jmarl
from bridge.pettingzoo import CycleParallelEnv, EnhancedPettingZooEnv
from bridge.tianshou.jax_policy import JaxPolicy, JaxPPO
from bridge.tianshou.manager import FlexibleMultiAgentPolicyManager

torch.set_num_threads(1)
# per-agent reward vectors make Tianshou log "only 1D sequences are supported" on every collect
logging.getLogger("tianshou.data.stats").setLevel(logging.ERROR)

HIDDEN = (64, 64)
BATCH_PER_AGENT = 64  # sampled transitions per agent and gradient step
GRADIENT_STEPS_PER_ENV_STEP = 0.1
COLLECT_PER_ENV = 10  # env steps per env between updates
# env steps per env per timed run (collect runs, training runs) and replay capacity per env in
# env steps (N agent-steps each; pistonball's pixel observations are 164 kB per agent-step)
SIZES = {
    ("simple_spread", False): {"collect": 250, "train": 200, "repeats": 3, "replay": 500},
    ("simple_spread", True): {"collect": 50, "train": 20, "repeats": 2, "replay": 500},
    ("pistonball", False): {"collect": 25, "train": 20, "repeats": 2, "replay": 40},
    ("pistonball", True): {"collect": 5, "train": 10, "repeats": 1, "replay": 40},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument("--env", choices=("simple_spread", "pistonball"), default="simple_spread")
    parser.add_argument("--agents", type=int, default=20, help="N agents (pistons)")
    parser.add_argument("--envs", type=int, default=4, help="envs in the DummyVectorEnv")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per variant")
    parser.add_argument(
        "--vectors",
        default=None,
        help="vector env kinds for train, comma-separated (default: dummy,subproc; pistonball: "
        "dummy -- its pixel observations through pipes take minutes per run)",
    )
    args = parser.parse_args()
    default = "dummy" if args.env == "pistonball" else "dummy,subproc"
    args.vectors = (args.vectors or default).split(",")
    unknown = set(args.vectors) - {"dummy", "subproc"}
    if unknown:
        parser.error(f"unknown --vectors {sorted(unknown)}: choose from dummy, subproc")
    args.sizes = SIZES[(args.env, args.quick)]
    args.repeats = args.repeats or args.sizes["repeats"]
    return args


def pz_env(args: argparse.Namespace, form: str) -> Any:
    """The PettingZoo env itself, ``form`` "aec" or "parallel" (PettingZoo's own conversion)."""
    if args.env == "pistonball":
        module, kwargs = pistonball_v6, {"n_pistons": args.agents, "continuous": False}
    else:
        module, kwargs = simple_spread_v3, {"N": args.agents, "max_cycles": 25}
    return module.env(**kwargs) if form == "aec" else module.parallel_env(**kwargs)


def ours(args: argparse.Namespace) -> Callable[[], EnhancedPettingZooEnv]:
    # no variant reads the global state (Tianshou's PettingZooEnv has none): skip env.state()
    return lambda: EnhancedPettingZooEnv(pz_env(args, "parallel"), include_state=False)


def theirs(args: argparse.Namespace) -> Callable[[], PettingZooEnv]:
    return lambda: PettingZooEnv(pz_env(args, "aec"))


def torch_dqn(obs_shape: Any, actions: Any) -> DQN:
    net = Net(state_shape=obs_shape, action_shape=actions.n, hidden_sizes=list(HIDDEN))
    policy = DiscreteQLearningPolicy(
        model=net, action_space=actions, eps_training=0.1, eps_inference=0.0
    )
    return DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), target_update_freq=100)


def manager_algorithm(args: argparse.Namespace) -> FlexibleMultiAgentPolicyManager:
    env = ours(args)()
    algo = torch_dqn(env.padded_observation_space.shape, env.padded_action_space)
    return FlexibleMultiAgentPolicyManager(algo, env, mode="shared")


def tianshou_algorithm(args: argparse.Namespace) -> MultiAgentOffPolicyAlgorithm:
    env = theirs(args)()
    algos = [torch_dqn(env.observation_space.shape, env.action_space) for _ in range(args.agents)]
    return MultiAgentOffPolicyAlgorithm(algorithms=algos, env=env)


def jax_algorithm(args: argparse.Namespace) -> JaxPPO:
    cfg = jmarl.ppo_config_for("ippo", jmarl.PPOConfig(hidden_sizes=HIDDEN))
    return JaxPPO(policy=JaxPolicy.from_env(ours(args)(), cfg, seed=0), seed=0)


VECTOR_ENVS = {"dummy": DummyVectorEnv, "subproc": SubprocVectorEnv}


def make_collector(
    algorithm: Any, make: Callable[[], Any], envs: int, per_env: int, vector: str = "dummy"
) -> Collector:
    # spawned workers: forking a process that has started JAX's threads can deadlock
    kwargs = {"context": "spawn"} if vector == "subproc" else {}
    venv = VECTOR_ENVS[vector]([make] * envs, **kwargs)
    venv.seed(0)
    col = Collector[CollectStats](algorithm, venv, VectorReplayBuffer(envs * per_env, envs))
    col.reset()
    return col


def best_rate(name: str, runs: list[float], agent_steps: int, warmup_s: float) -> dict[str, Any]:
    timing = Timing(tuple(runs))
    log(f"[{name}] {agent_steps / timing.best_s:.0f} agent-steps/s (best of {len(runs)})")
    return {
        "agent_steps_per_run": agent_steps,
        "agent_steps_per_s": agent_steps / timing.best_s,
        "warmup_s": warmup_s,
        **timing.as_dict(),
    }


def measure_collect(
    name: str, algorithm: Any, make: Callable[[], Any], per_step: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Best-of-``repeats`` agent-steps/s of ``collect`` in inference mode.

    :param per_step: agent-steps per collector step (N in parallel mode, 1 in AEC mode).
    """
    n, envs = args.agents, args.envs
    steps = args.sizes["collect"] * envs * n // per_step  # collector steps per run
    col = make_collector(algorithm, make, envs, args.sizes["replay"] * n // per_step)
    start = time.perf_counter()
    col.collect(n_step=steps)  # warm-up (JIT compilation of a JAX policy included)
    warmup_s = time.perf_counter() - start
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stats = col.collect(n_step=steps)
        runs.append(time.perf_counter() - start)
    return best_rate(f"collect {name}", runs, stats.n_collected_steps * per_step, warmup_s)


def measure_train(
    name: str,
    algorithm: Any,
    make: Callable[[], Any],
    per_step: int,
    args: argparse.Namespace,
    vector: str,
) -> dict[str, Any]:
    """Best-of-``repeats`` agent-steps/s of collect + update rounds (see the module docstring).

    :param vector: ``"dummy"`` or ``"subproc"``, the vector env the collector steps.
    """
    n, envs = args.agents, args.envs
    collect = COLLECT_PER_ENV * envs * n // per_step  # collector steps per round
    grads = round(GRADIENT_STEPS_PER_ENV_STEP * COLLECT_PER_ENV * envs)
    rounds = args.sizes["train"] // COLLECT_PER_ENV
    col = make_collector(algorithm, make, envs, args.sizes["replay"] * n // per_step, vector)

    def one_round() -> int:
        collected = col.collect(n_step=collect).n_collected_steps
        for _ in range(grads):
            algorithm.update(buffer=col.buffer, sample_size=BATCH_PER_AGENT * n)
        return collected * per_step

    with policy_within_training_step(algorithm.policy):
        start = time.perf_counter()
        for _ in range(3):  # fills the replay a little, first updates
            one_round()
        warmup_s = time.perf_counter() - start
        runs, cpu, agent_steps = [], [], 0
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            agent_steps = sum(one_round() for _ in range(rounds))
            runs.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    col.env.close()
    out = best_rate(f"train {vector} {name}", runs, agent_steps, warmup_s)
    # CPU of this (the main) process only: with the envs in workers, the main process is what
    # a machine with more cores cannot spread
    out["main_process_cpu_us_per_agent_step"] = 1e6 * min(cpu) / agent_steps
    return out


def raw_env_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Agent-steps/s of the bare envs under random actions, no Tianshou: PettingZoo's parallel
    form, the same stepped by :class:`bridge.CycleParallelEnv` (what (1) and (3) drive) and
    the AEC form (what (2) drives)."""
    n, steps = args.agents, args.sizes["collect"] * args.envs
    out: dict[str, Any] = {}
    for form in ("parallel", "cycle_parallel", "aec"):
        env = pz_env(args, "aec" if form == "aec" else "parallel")
        if form == "cycle_parallel":
            env = CycleParallelEnv(env.aec_env)
        runs = []
        for _ in range(args.repeats):
            env.reset(seed=0)
            start = time.perf_counter()
            done = 0
            while done < steps * n:
                if not env.agents:
                    env.reset()
                if form != "aec":
                    env.step({a: env.action_space(a).sample() for a in env.agents})
                    done += n
                    continue
                agent = env.agent_selection
                if env.terminations[agent] or env.truncations[agent]:
                    env.step(None)
                    continue
                env.observe(agent)  # what an AEC driver does at each turn (Tianshou: last())
                env.step(env.action_space(agent).sample())
                done += 1
            runs.append(time.perf_counter() - start)
        out[form] = best_rate(f"raw env {form}", runs, steps * n, 0.0)
    return out


def overhead_us(rate: float | None, ceiling: float | None) -> float | None:
    """Microseconds per agent-step spent outside the bare env (policy, wrappers, collector)."""
    if rate is None or ceiling is None:
        return None
    return 1e6 * (1 / rate - 1 / ceiling)


def run_variant(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as error:  # a variant that breaks is reported, not fatal
        log(f"[{args[0]}] failed: {error!r}")
        return {"error": repr(error), "agent_steps_per_s": None}


def run_all(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    n = args.agents
    collect = {
        "manager": run_variant(
            measure_collect, "manager", manager_algorithm(args), ours(args), n, args
        ),
        "tianshou": run_variant(
            measure_collect, "tianshou", tianshou_algorithm(args), theirs(args), 1, args
        ),
    }
    if args.env == "simple_spread":
        collect["jax_policy"] = run_variant(
            measure_collect, "jax_policy", jax_algorithm(args), ours(args), n, args
        )
    train = {
        vector: {
            "manager": run_variant(
                measure_train, "manager", manager_algorithm(args), ours(args), n, args, vector
            ),
            "tianshou": run_variant(
                measure_train, "tianshou", tianshou_algorithm(args), theirs(args), 1, args, vector
            ),
        }
        for vector in args.vectors
    }
    return {"collect": collect, "train": train}


def train_ratios(train: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """``manager / tianshou`` per vector env kind and for each side's faster kind."""
    rate = {v: {k: r["agent_steps_per_s"] for k, r in both.items()} for v, both in train.items()}
    out = {
        f"train_{v}_manager_over_tianshou": ratio(r["manager"], r["tianshou"])
        for v, r in rate.items()
    }
    best = {
        side: max((r[side] for r in rate.values() if r[side] is not None), default=None)
        for side in ("manager", "tianshou")
    }
    out["train_best_over_best"] = ratio(best["manager"], best["tianshou"])
    if "subproc" in train:
        sub = train["subproc"]
        out["subproc_main_process_cpu_tianshou_over_manager"] = ratio(
            sub["tianshou"].get("main_process_cpu_us_per_agent_step"),
            sub["manager"].get("main_process_cpu_us_per_agent_step"),
        )
    return out


def main() -> None:
    args = parse_args()
    arm_watchdog(600 if args.quick else 1800)
    info = machine_info()
    log(f"{args.env}, N={args.agents}, {args.envs} envs")
    results = run_all(args)
    ceiling = raw_env_ceiling(args)
    coll = {k: v["agent_steps_per_s"] for k, v in results["collect"].items()}
    cyc, aec = (ceiling[f]["agent_steps_per_s"] for f in ("cycle_parallel", "aec"))
    over = {k: overhead_us(v, aec if k == "tianshou" else cyc) for k, v in coll.items()}
    emit(
        {
            "benchmark": "tianshou_manager",
            "quick": args.quick,
            "machine": {**info, "torch_version": torch.__version__, "torch_threads": 1},
            "setup": {
                "env": f"{args.env} (discrete actions)",
                "agents": args.agents,
                "vector_envs": {
                    "collect": f"DummyVectorEnv x {args.envs}",
                    "train": [f"{VECTOR_ENVS[v].__name__} x {args.envs}" for v in args.vectors],
                },
                "env_steps_per_env_per_run": {k: args.sizes[k] for k in ("collect", "train")},
                "replay_env_steps_per_env": args.sizes["replay"],
                "repeats": args.repeats,
                "hidden_sizes": list(HIDDEN),
                "unit": "agent-step = one agent acting once (parallel step = N, AEC step = 1)",
                "train": {
                    "env_steps_per_env_between_updates": COLLECT_PER_ENV,
                    "gradient_steps_per_env_step": GRADIENT_STEPS_PER_ENV_STEP,
                    "samples_per_agent_per_gradient_step": BATCH_PER_AGENT,
                    "epsilon": 0.1,
                    "target_update_freq": 100,
                },
            },
            "results": results,
            "raw_env_ceiling": ceiling,
            "collect_overhead_us_per_agent_step": over,
            "ratios": {
                **train_ratios(results["train"]),
                "collect_manager_over_tianshou": ratio(coll["manager"], coll["tianshou"]),
                "target": 3.0,
                "collect_jax_policy_over_manager": ratio(coll.get("jax_policy"), coll["manager"]),
                "collect_tianshou_overhead_over_manager_overhead": ratio(
                    over["tianshou"], over["manager"]
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
