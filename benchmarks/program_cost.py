"""XLA's static cost of the compiled whole-loop training program (load-independent).

Compiles ``jax.jit(make_ppo(...).train)`` for IPPO and MAPPO on ``simple_spread`` and prints
XLA's cost analysis (flops, bytes accessed), the number of HLO instructions and the temporary
memory of the compiled program. Timings on a shared 2-core machine drift by tens of percent
between runs; these figures do not, so two commits can be compared exactly: run the script
on each (``git worktree``) and compare, e.g. before and after a refactoring that should not
change the hot path.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/program_cost.py > program_cost.json
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's jmarl first

import jax
from _common import emit, log, machine_info

import jmarl


def cost(algo: str, args: argparse.Namespace) -> dict:
    env = jmarl.make("simple_spread", num_agents=args.agents)
    cfg = jmarl.ppo_config_for(
        algo, jmarl.PPOConfig(num_envs=args.num_envs, rollout_length=args.rollout_length)
    )
    trainer = jmarl.make_ppo(env, cfg, 20 * cfg.steps_per_update, "shared")
    compiled = jax.jit(trainer.train).lower(jax.random.key(0)).compile()
    analysis = compiled.cost_analysis()
    instructions = re.findall(r"=\s*\S+\s+[\w-]+\(", compiled.as_text())
    return {
        "flops": int(analysis.get("flops", -1)),
        "bytes_accessed": int(analysis.get("bytes accessed", -1)),
        "jmarl_path": str(Path(jmarl.__file__).parent),
        "hlo_instructions": len(instructions),
        "temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--rollout-length", type=int, default=50)
    args = parser.parse_args()
    rows = {}
    for algo in ("ippo", "mappo"):
        log(f"compiling {algo}")
        rows[algo] = cost(algo, args)
    emit({"machine": machine_info(), "settings": vars(args), "programs": rows})


if __name__ == "__main__":
    main()
