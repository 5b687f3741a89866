"""Cost of jmarl's PettingZoo bridge: wrapper overhead and host-stepped MAPPO training speed.

(a) Wrapper overhead: env steps/s of mpe2 ``simple_spread_v3.parallel_env(N=3)`` (25-step
    episodes) under a random policy, raw (one ``action_space(agent).sample()`` per live agent,
    a dict of actions, reset when no agent is left) vs. the same env behind
    ``bridge.EnhancedPettingZooEnv(..., mode="parallel")`` (one ``MultiDiscrete`` sample per step,
    reset on episode end). Both do the same number of steps; raw and wrapped runs alternate and
    the best of ``--repeats`` gives each rate. Baseline: the raw env.
(b) Training frames/s (frame = env step, all agents acting once): jmarl MAPPO with a shared
    policy trained through the bridge (``bridge.pettingzoo_train.train_run`` on
    ``pettingzoo:mpe2.simple_spread_v3``, 8 envs x 25-step rollouts, 4 epochs x 2 minibatches,
    64x64 MLP) vs. BenchMARL 1.5.2 MAPPO on its PettingZoo ``simple_spread`` task (3 agents,
    ``max_cycles`` 25, discrete actions), same frame budget. BenchMARL runs in its own venv as a
    subprocess (``benchmarks/_benchmarl_mappo.py``; it also documents the ``pettingzoo.mpe`` ->
    ``mpe2`` import workaround). BenchMARL is run twice: with its own YAML defaults (256x256 MLP,
    45 passes of 400-frame minibatches per 5,000-frame batch: about 3x the gradient steps per
    frame of jmarl's run, each on a 4x larger minibatch) and with jmarl's update layout
    (``matched``: 8 serial envs, 200-frame batches, 100-frame minibatches, 4 passes, 64x64
    MLP). Baseline: BenchMARL, both variants measured in this run. jmarl's wall time includes
    everything (env construction, jit compilation, checkpoints, the returns plot); its
    ``compile_s`` in the run summary only covers setup because the bridge compiles lazily in the
    first update, so the rate without compilation comes from the progress callback's
    timestamps (after the first logged chunk of updates). BenchMARL's wall time covers building
    the Experiment and running it (its import is reported apart). Torch uses 1 thread: with 2
    threads BenchMARL ran 10x slower on this 2-core machine while other processes loaded it.

Run (about 6-7 minutes on 2 CPU cores; ``--quick`` checks the script in about a minute)::

    JAX_PLATFORMS=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pettingzoo_bridge.py \\
        > pettingzoo_bridge.json

Without ``/work/benchmarl-venv`` (``--benchmarl-python``) the BenchMARL rows report why they are
missing and the figure from ``shared/REFERENCE.md`` is quoted, not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _common import emit, log, machine_info, ratio

ROOT = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve().parent / "_benchmarl_mappo.py"
ENV_NAME = "pettingzoo:mpe2.simple_spread_v3"
NUM_AGENTS, MAX_CYCLES = 3, 25

FULL = {"wrapper_steps": 10_000, "frames": 50_000, "benchmarl_frames_per_batch": 5_000}
QUICK = {"wrapper_steps": 1_000, "frames": 5_000, "benchmarl_frames_per_batch": 1_000}

JMARL_PPO = {"num_envs": 8, "rollout_length": 25, "num_epochs": 4, "num_minibatches": 2}
# BenchMARL with jmarl's update layout: 8 envs x 25 steps per batch, 2 minibatches, 4 passes.
MATCHED = {
    "frames_per_batch": 200,
    "n_envs": 8,
    "minibatch_size": 100,
    "minibatch_iters": 4,
    "hidden": [64, 64],
}

REFERENCE_FIGURE = {
    "what": "BenchMARL 1.5.2 (TorchRL) MAPPO on PettingZoo simple_spread, CPU",
    "frames_per_s_low": 235,
    "frames_per_s_high": 270,
    "source": "shared/REFERENCE.md (2-core CPU of this kind, often under load)",
    "label": "reference figure, not measured here",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument("--wrapper-steps", type=int, help="env steps per wrapper-overhead run")
    parser.add_argument("--frames", type=int, help="training frame budget (env steps)")
    parser.add_argument("--repeats", type=int, default=3, help="wrapper-overhead repeats")
    parser.add_argument(
        "--benchmarl-python",
        default="/work/benchmarl-venv/bin/python",
        help="interpreter of the venv that has BenchMARL",
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--skip-benchmarl", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    args.wrapper_steps = args.wrapper_steps or sizes["wrapper_steps"]
    args.frames = args.frames or sizes["frames"]
    args.benchmarl_frames_per_batch = sizes["benchmarl_frames_per_batch"]
    return args


# --- (a) wrapper overhead -----------------------------------------------------------------


def make_raw_env() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mpe2 import simple_spread_v3
    return simple_spread_v3.parallel_env(N=NUM_AGENTS, max_cycles=MAX_CYCLES)


def run_raw(steps: int, seed: int) -> float:
    """Seconds for ``steps`` random-policy steps of the raw parallel env."""
    env = make_raw_env()
    spaces = {a: env.action_space(a) for a in env.possible_agents}
    for k, space in enumerate(spaces.values()):
        space.seed(seed + k)
    env.reset(seed=seed)
    episodes = 1
    start = time.perf_counter()
    for _ in range(steps):
        env.step({a: spaces[a].sample() for a in env.agents})
        if not env.agents:
            env.reset(seed=seed + episodes)
            episodes += 1
    return time.perf_counter() - start


def run_wrapped(steps: int, seed: int) -> float:
    """Seconds for ``steps`` random-policy steps through ``EnhancedPettingZooEnv``."""
    from bridge.pettingzoo_env import EnhancedPettingZooEnv

    env = EnhancedPettingZooEnv(make_raw_env(), mode="parallel")
    env.action_space.seed(seed)
    env.reset(seed=seed)
    episodes = 1
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset(seed=seed + episodes)
            episodes += 1
    return time.perf_counter() - start


def wrapper_overhead(args: argparse.Namespace) -> dict[str, Any]:
    raw_s, wrapped_s = [], []
    run_raw(200, args.seed)  # warm imports and caches once, untimed
    run_wrapped(200, args.seed)
    for r in range(args.repeats):
        raw_s.append(run_raw(args.wrapper_steps, args.seed))
        wrapped_s.append(run_wrapped(args.wrapper_steps, args.seed))
        log(
            f"[pettingzoo_bridge] wrapper repeat {r + 1}/{args.repeats}: "
            f"raw {args.wrapper_steps / raw_s[-1]:,.0f}, "
            f"wrapped {args.wrapper_steps / wrapped_s[-1]:,.0f} env steps/s"
        )
    raw_sps = args.wrapper_steps / min(raw_s)
    wrapped_sps = args.wrapper_steps / min(wrapped_s)
    noisy = wrapped_sps > raw_sps  # the wrapper only adds work: the load changed between runs
    return {
        "env": f"mpe2.simple_spread_v3.parallel_env(N={NUM_AGENTS}, max_cycles={MAX_CYCLES})",
        "steps_per_run": args.wrapper_steps,
        "repeats": args.repeats,
        "raw_runs_s": raw_s,
        "wrapped_runs_s": wrapped_s,
        "raw_env_steps_per_s": raw_sps,
        "wrapped_env_steps_per_s": wrapped_sps,
        "ratio_wrapped_over_raw": ratio(wrapped_sps, raw_sps),
        "target_ratio": 0.5,
        "wrapper_us_per_step": 1e6 * (min(wrapped_s) - min(raw_s)) / args.wrapper_steps,
        "throughput_from": "best run of each; raw and wrapped runs alternate",
        "load_noise_warning": (
            "wrapped ran faster than raw: other processes' load changed between runs; "
            "rerun on an idle machine"
            if noisy
            else None
        ),
    }


# --- (b) training throughput ----------------------------------------------------------------


def jmarl_training(args: argparse.Namespace) -> dict[str, Any]:
    from bridge.pettingzoo_train import train_run
    from jmarl.run.config import from_dict

    cfg = from_dict(
        {
            "env": ENV_NAME,
            "env_kwargs": {"N": NUM_AGENTS, "max_cycles": MAX_CYCLES},
            "algo": "mappo",
            "sharing": "shared",
            "steps": args.frames,
            "seed": args.seed,
            "ppo": JMARL_PPO,
        }
    )
    marks: list[tuple[float, int]] = []

    def progress(env_steps: int, row: dict[str, Any]) -> None:
        marks.append((time.perf_counter(), env_steps))
        if env_steps:
            ret = row.get("episode_return")
            log(f"[pettingzoo_bridge] jmarl {env_steps:,} frames, return {ret}")

    out_dir = Path(tempfile.mkdtemp(prefix="pettingzoo_bridge_"))
    try:
        start = time.perf_counter()
        summary = train_run(cfg, out_dir, progress)
        wall_s = time.perf_counter() - start
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    frames = int(summary["env_steps"])
    logged = [(t, s) for t, s in marks if s > 0]
    (t_first, s_first), (t_last, s_last) = logged[0], logged[-1]
    steady = ratio(s_last - s_first, t_last - t_first)
    # time to the first logged chunk, less what that chunk's frames cost at the steady rate
    overhead_s = (t_first - start) - s_first / steady if steady else None
    return {
        "config": {
            "env": ENV_NAME,
            "env_kwargs": cfg.env_kwargs,
            "algo": cfg.algo,
            "sharing": cfg.sharing,
            **JMARL_PPO,
            "hidden_sizes": list(cfg.algo_config.hidden_sizes),
            "frames_per_update": cfg.algo_config.steps_per_update,
            "gradient_steps_per_1000_frames": 1000
            * cfg.algo_config.num_epochs
            * cfg.algo_config.num_minibatches
            / cfg.algo_config.steps_per_update,
            "minibatch_size_frames": (
                cfg.algo_config.steps_per_update // cfg.algo_config.num_minibatches
            ),
        },
        "frames": frames,
        "updates": summary["updates"],
        "wall_s": wall_s,
        "frames_per_s": frames / wall_s,
        "summary_compile_s": summary["compile_s"],
        "summary_compile_s_note": "setup only: jax.jit compiles lazily inside the first update",
        "first_logged_frames": s_first,
        "first_logged_at_s": t_first - start,
        "steady_frames_per_s": steady,
        "steady_from": "progress timestamps from the first logged chunk to the last",
        "compile_and_setup_s_estimate": overhead_s,
        "frames_per_s_excluding_compile": ratio(
            frames, wall_s - overhead_s if overhead_s is not None else None
        ),
        "final_episode_return": summary["final_episode_return"],
        "final_episode_return_note": "mean per-agent return, mean over the last 10% of updates",
    }


def benchmarl_training(
    args: argparse.Namespace, variant: str, extra: dict[str, Any]
) -> dict[str, Any]:
    python = Path(args.benchmarl_python)
    if not python.exists():
        return {"error": f"BenchMARL interpreter {python} not found", "variant": variant}
    command = [
        str(python),
        str(HELPER),
        "--frames",
        str(args.frames),
        "--agents",
        str(NUM_AGENTS),
        "--max-cycles",
        str(MAX_CYCLES),
        "--threads",
        str(args.torch_threads),
        "--seed",
        str(args.seed),
    ]
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        command += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.torch_threads)}
    log(f"[pettingzoo_bridge] BenchMARL ({variant}): {args.frames:,} frames")
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    process_s = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {
            "variant": variant,
            "error": f"BenchMARL run failed (exit {proc.returncode})",
            "stderr_tail": tail,
        }
    result = json.loads(lines[-1])
    log(
        f"[pettingzoo_bridge] BenchMARL ({variant}): {result['frames_per_s']:,.0f} frames/s, "
        f"reward {result['final_episode_reward']}"
    )
    shared = {key: result.pop(key, None) for key in ("versions", "mpe2_aliases")}
    return {"variant": variant, **result, "process_s": process_s, "_shared": shared}


def main() -> None:
    args = parse_args()
    info = machine_info()
    log(f"[pettingzoo_bridge] wrapper overhead: {args.wrapper_steps:,} steps x {args.repeats}")
    overhead = wrapper_overhead(args)
    log(f"[pettingzoo_bridge] jmarl MAPPO through the bridge: {args.frames:,} frames")
    jmarl_row = jmarl_training(args)
    log(
        f"[pettingzoo_bridge] jmarl: {jmarl_row['frames_per_s']:,.0f} frames/s "
        f"({jmarl_row['steady_frames_per_s']:,.0f} steady)"
    )
    benchmarl: dict[str, Any] = {}
    if args.skip_benchmarl:
        benchmarl["skipped"] = "--skip-benchmarl"
    else:
        defaults = {"frames_per_batch": args.benchmarl_frames_per_batch}
        benchmarl["defaults"] = benchmarl_training(args, "defaults", defaults)
        benchmarl["matched"] = benchmarl_training(args, "matched", MATCHED)
    shared = [row.pop("_shared", None) for row in benchmarl.values() if isinstance(row, dict)]
    shared = [x for x in shared if x is not None]
    ratios: dict[str, Any] = {"target": 3.0}
    for variant, row in benchmarl.items():
        if not isinstance(row, dict) or "error" in row:
            continue
        ratios[f"vs_{variant}"] = ratio(jmarl_row["frames_per_s"], row["frames_per_s"])
        ratios[f"vs_{variant}_excluding_compile"] = ratio(
            jmarl_row["frames_per_s_excluding_compile"], row["frames_per_s_run_only"]
        )
    measured = any(isinstance(r, dict) and "error" not in r for r in benchmarl.values())
    if not measured:
        errors = {k: v.get("error", v) if isinstance(v, dict) else v for k, v in benchmarl.items()}
        ratios["reason"] = f"BenchMARL not measured: {errors}"
        ratios["vs_reference_figure_low_high"] = [
            ratio(jmarl_row["frames_per_s"], REFERENCE_FIGURE["frames_per_s_high"]),
            ratio(jmarl_row["frames_per_s"], REFERENCE_FIGURE["frames_per_s_low"]),
        ]
    emit(
        {
            "benchmark": "pettingzoo_bridge",
            "quick": args.quick,
            **info,
            "python_executable": sys.executable,
            "torch_threads_benchmarl": args.torch_threads,
            "wrapper_overhead": overhead,
            "training": {
                "frame_budget": args.frames,
                "frame": "one env step (all agents act once)",
                "jmarl_mappo_bridge": jmarl_row,
                "benchmarl_mappo": benchmarl,
                "ratio_jmarl_over_benchmarl": ratios,
                "ratio_note": "wall frames/s (everything included) of jmarl over BenchMARL "
                "(Experiment construction + run); *_excluding_compile: jmarl without its "
                "estimated setup+compile over BenchMARL's run alone",
            },
            "benchmarl_versions": shared[0]["versions"] if shared else None,
            "benchmarl_workaround": {
                "problem": "pettingzoo 1.27 moved MPE to mpe2; TorchRL's PettingZoo wrapper "
                "falls back to `import pettingzoo.mpe.all_modules`, which raises ImportError",
                "fix": "_benchmarl_mappo.py registers mpe2 under the old names in sys.modules "
                "before importing BenchMARL (nothing on disk changed)",
                "aliased_modules": shared[0]["mpe2_aliases"] if shared else None,
            },
            "baseline": "(a) the raw mpe2 env; (b) BenchMARL MAPPO, measured in this run",
            "reference_figure_benchmarl": REFERENCE_FIGURE,
        }
    )


if __name__ == "__main__":
    main()
