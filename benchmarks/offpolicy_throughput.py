"""Off-policy training throughput and memory: jmarl VDN/QMIX vs JaxMARL's own Q-learning baselines.

(a) ``vdn``: env steps/s of the whole jitted training loop of jmarl VDN
    (``jmarl.algos.qlearning.make``, ``jax.jit(trainer.train)``) on ``simple_spread`` N=3 and of
    JaxMARL's ``baselines/QLearning/vdn_ff.py`` on ``MPE_simple_spread_v3``, both with the
    numbers of JaxMARL's ``config/alg/vdn_ff_mpe.yaml`` (envs, rollout, buffer, batch, epochs,
    learning rate and its decay, target interval, epsilon schedule, gradient clip, learning
    start, discount; evaluation off so that it does not count), the same env steps on both
    sides, at ``--envs`` env counts (8 32 128). JaxMARL's ``NUM_LAYERS: 2`` gives a Q network
    with no hidden layer (its loop makes ``NUM_LAYERS - 2`` hidden layers); jmarl has at least
    one, so the like-for-like rows run JaxMARL with ``NUM_LAYERS: 4`` (two hidden layers of
    ``HIDDEN_SIZE`` 64, as jmarl's ``hidden_sizes=(64, 64)``), and ``--shipped-envs`` (32) also
    runs JaxMARL's file as shipped (a linear Q) against the same jmarl row. Compilation is
    timed apart; each side is run once untimed, then ``--repeats`` seeds, the order of the sides
    rotating from one seed to the next so that machine load hits all of them. At the first of
    ``--returns-envs`` both sides' per-agent returns are reported at equal env steps (JaxMARL's
    scan returns no metrics: they are read from its per-update ``wandb.log`` callback, in a
    second program whose runs are timed apart).
(b) ``qmix``: the same for jmarl QMIX (feed-forward) against JaxMARL's only QMIX,
    ``qmix_rnn.py`` (a GRU agent trained on whole-episode sequences), with the numbers of its
    ``config/alg/ql_rnn_mpe.yaml``: recurrent vs feed-forward, NOT like for like; sizes in
    transitions are matched (JaxMARL's buffer of 5000 26-step sequences = 130,000 transitions,
    its batch of 32 sequences = 832 transitions per gradient step).
(c) ``memory``: XLA's memory analysis (``compiled.memory_analysis()``: argument, output, temp
    bytes) of ``jax.jit(jax.vmap(train))`` over ``--memory-seeds`` K seeds (1 4 16), compiled
    only, for jmarl VDN and JaxMARL ``vdn_ff`` (as its ``single_run`` vmaps ``NUM_SEEDS``), with
    each one's replay-buffer bytes per seed (jmarl: ``jmarl.algos.replay.replay_bytes``;
    JaxMARL: its flashbax buffer state).

Every ratio is jmarl / JaxMARL, measured in this run. JaxMARL runs from its own venv (never a
jmarl dependency; flashbax installed there, see benchmarks/README.md) through the timing server
``_jaxmarl_qlearning.py``; without ``--jaxmarl-python``/``--jaxmarl-src`` only jmarl is measured
and the JSON says why.

Run (about 8 minutes on one CPU core; ``--quick`` checks the script, without the shipped
JaxMARL variant, in about 2 on an idle core)::

    JAX_PLATFORMS=cpu taskset -c 1 .venv/bin/python benchmarks/offpolicy_throughput.py \\
        --jaxmarl-python /work/jaxmarl-venv/bin/python --jaxmarl-src /work/jaxmarl-src
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from _common import (
    arm_watchdog,
    compile_jit,
    emit,
    log,
    machine_info,
    memory_stats,
    ratio,
    start_side_helper,
)
from train_throughput import RETURNS_NOTE, ask, return_curve, side_row  # puts our jmarl first

import jmarl
from jmarl.algos.qlearning import QConfig, make
from jmarl.algos.replay import example_item, replay_bytes

HELPER = Path(__file__).resolve().parent / "_jaxmarl_qlearning.py"
VDN_STEPS, QMIX_STEPS = 204_800, 41_600  # env steps of one timed run (divisible by E x T)
EVAL_OFF = {"TEST_DURING_TRAINING": False, "WANDB_MODE": "disabled"}
QUICK_VDN = {"LEARNING_STARTS": 512, "BUFFER_SIZE": 4096}  # --quick: tiny runs still learn
QUICK_QMIX = {"LEARNING_STARTS": 416, "BUFFER_SIZE": 256}  # 32 sequences per env at least
# Without JaxMARL, jmarl's side is configured from these numbers of the two yaml files
# (JaxMARL commit c793d09); with it, from the files themselves as the helper reads them.
SHIPPED_CONFIGS: dict[str, dict[str, Any]] = {
    "vdn_ff_mpe": {
        "NUM_ENVS": 32, "NUM_STEPS": 16, "BUFFER_SIZE": 100_000, "BUFFER_BATCH_SIZE": 32,
        "HIDDEN_SIZE": 64, "NUM_LAYERS": 2, "EPS_START": 1.0, "EPS_FINISH": 0.05,
        "EPS_DECAY": 0.1, "MAX_GRAD_NORM": 25, "TARGET_UPDATE_INTERVAL": 200, "TAU": 1.0,
        "NUM_EPOCHS": 1, "LR": 0.005, "LEARNING_STARTS": 10_000, "LR_LINEAR_DECAY": True,
        "GAMMA": 0.9,
    },
    "ql_rnn_mpe": {
        "NUM_ENVS": 8, "NUM_STEPS": 26, "BUFFER_SIZE": 5000, "BUFFER_BATCH_SIZE": 32,
        "HIDDEN_SIZE": 64, "MIXER_EMBEDDING_DIM": 32, "MIXER_HYPERNET_HIDDEN_DIM": 128,
        "EPS_START": 1.0, "EPS_FINISH": 0.05, "EPS_DECAY": 0.1, "MAX_GRAD_NORM": 25,
        "TARGET_UPDATE_INTERVAL": 200, "TAU": 1.0, "NUM_EPOCHS": 1, "LR": 0.005,
        "LEARNING_STARTS": 10_000, "LR_LINEAR_DECAY": True, "GAMMA": 0.9,
    },
}  # fmt: skip
VDN_DIFFERENCES = [
    "JaxMARL's flashbax flat buffer pairs each stored item with the item in the same "
    "(step, env) slot of the NEXT rollout as its next observation (NUM_STEPS env steps "
    "later, not one); jmarl stores each transition with its own next observation",
    "jmarl stores next observation and global state in every item (more bytes per item)",
    "optimizer: JaxMARL RAdam, jmarl Adam (eps 1e-5); both clip the global gradient norm "
    "and decay the learning rate linearly per gradient step",
    "team reward: JaxMARL the sum of the agents' rewards, jmarl their mean",
    "exploration: JaxMARL decays epsilon by updates counted from 0, jmarl from 1",
    "JaxMARL's env is its MPE_simple_spread_v3, jmarl's its own simple_spread (same "
    "dynamics and rewards); JaxMARL's CTRolloutManager appends a one-hot agent id to each "
    "observation, so jmarl runs with agent_id_input=True",
]
QMIX_LABEL = (
    "recurrent vs feed-forward, NOT like for like: JaxMARL qmix_rnn.py (GRU agent, trains on "
    "whole 26-step sequences from an episode buffer, envs reset every update) vs jmarl qmix "
    "(MLP agent, uniform transitions); matched in envs, rollout, buffer and batch transitions, "
    "mixer sizes and schedule. If jmarl gets a recurrent QMIX this is where it compares."
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, checks the script")
    parser.add_argument("--jaxmarl-python", help="JaxMARL's interpreter (its side venv)")
    parser.add_argument("--jaxmarl-src", help="JaxMARL checkout (baselines/QLearning)")
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--shipped-envs", type=int, nargs="*", default=[32])
    parser.add_argument("--returns-envs", type=int, nargs="*", default=[32])
    parser.add_argument("--vdn-steps", type=int, default=VDN_STEPS)
    parser.add_argument("--qmix-steps", type=int, default=QMIX_STEPS)
    parser.add_argument("--memory-seeds", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-qmix", action="store_true")
    parser.add_argument("--note", default="", help="recorded in the JSON (machine state)")
    args = parser.parse_args()
    if args.quick:
        args.envs, args.shipped_envs, args.returns_envs = [8], [], [8]
        args.vdn_steps, args.qmix_steps = 2_048, 832
        args.memory_seeds, args.repeats = [2], 1
    return args


def q_config(jx: dict[str, Any], mixer: str) -> QConfig:
    """jmarl's ``QConfig`` with the numbers of JaxMARL's effective config ``jx``.

    ``vdn``: ``vdn_ff`` (flat buffer of ``BUFFER_SIZE`` transitions, batches of
    ``BUFFER_BATCH_SIZE`` transitions, target max, ``NUM_LAYERS - 2`` hidden layers).
    ``qmix``: ``qmix_rnn`` (``BUFFER_SIZE`` and ``BUFFER_BATCH_SIZE`` count sequences of
    ``NUM_STEPS`` transitions; double Q; hidden ``HIDDEN_SIZE`` -> GRU -> head becomes two
    hidden layers of ``HIDDEN_SIZE``).
    """
    per_item = jx["NUM_STEPS"] if mixer == "qmix" else 1
    hidden = 2 if mixer == "qmix" else jx["NUM_LAYERS"] - 2
    extra = {}
    if mixer == "qmix":
        extra = {
            "mixer_embed_dim": jx["MIXER_EMBEDDING_DIM"],
            "mixer_hidden": jx["MIXER_HYPERNET_HIDDEN_DIM"],
        }
    return QConfig(
        num_envs=jx["NUM_ENVS"],
        rollout_length=jx["NUM_STEPS"],
        buffer_size=int(jx["BUFFER_SIZE"]) * per_item,
        batch_size=int(jx["BUFFER_BATCH_SIZE"]) * per_item,
        num_epochs=jx["NUM_EPOCHS"],
        learning_starts=int(jx["LEARNING_STARTS"]),
        lr=jx["LR"],
        anneal_lr=jx["LR_LINEAR_DECAY"],
        gamma=jx["GAMMA"],
        epsilon_start=jx["EPS_START"],
        epsilon_finish=jx["EPS_FINISH"],
        epsilon_decay=jx["EPS_DECAY"],
        target_update_interval=jx["TARGET_UPDATE_INTERVAL"],
        tau=jx["TAU"],
        double_q=mixer == "qmix",
        max_grad_norm=float(jx["MAX_GRAD_NORM"]),
        hidden_sizes=(jx["HIDDEN_SIZE"],) * hidden,
        activation="relu",
        agent_id_input=True,
        mixer=mixer,
        **extra,
    )


def jmarl_trainer(cfg: QConfig, total_steps: int) -> jmarl.Trainer:
    env = jmarl.make("simple_spread", num_agents=3)
    return make(env, cfg, total_steps, jmarl.make_policy_mapping(env.spec, "shared"))


class Sides:
    """The JaxMARL server (or None) and the compiled programs of both sides, by name."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.proc, self.greeting = start_helper(args)
        self.jmarl: dict[str, Any] = {}

    def compile_jaxmarl(self, name: str, file: str, alg: str, overrides: dict) -> dict:
        """JaxMARL's reply to ``compile``; without JaxMARL, only its config (from
        ``SHIPPED_CONFIGS``) and ``"absent": True``."""
        if self.proc is None:
            return {"absent": True, "config": self.config(alg, overrides)}
        request = {"op": "compile", "name": name, "file": file, "alg": alg, "overrides": overrides}
        return ask(self.proc, request)

    def config(self, alg: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """JaxMARL's effective config: its yaml files as the helper reads them, or without
        JaxMARL ``SHIPPED_CONFIGS``; with ``overrides``."""
        if self.proc is None:
            return {**SHIPPED_CONFIGS[alg], **overrides}
        return ask(self.proc, {"op": "config", "alg": alg, "overrides": overrides})["config"]

    def compile_jmarl(self, name: str, cfg: QConfig, total_steps: int) -> dict[str, Any]:
        trainer = jmarl_trainer(cfg, total_steps)
        compiled, compile_s = compile_jit(trainer.train, jax.random.key(self.args.seed))
        self.jmarl[name] = compiled
        return {"compile_s": compile_s, "num_updates": trainer.num_updates}

    def run(self, name: str, seed: int) -> tuple[float, list[float] | None]:
        """One timed run of program ``name`` (``jmarl/...`` or a JaxMARL one): seconds and
        per-update per-agent returns (None where the program reports none)."""
        if name.startswith("jmarl/"):
            start = time.perf_counter()
            out = jax.block_until_ready(self.jmarl[name](jax.random.key(seed)))
            run_s = time.perf_counter() - start
            return run_s, np.asarray(out.metrics["episode_return"], np.float64).tolist()
        reply = ask(self.proc, {"op": "run", "name": name, "seed": seed})
        return reply["run_s"], reply["returns"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait()


def start_helper(args: argparse.Namespace) -> tuple[subprocess.Popen | None, dict[str, Any]]:
    """Starts ``_jaxmarl_qlearning.py``; returns it and its greeting, or None and why."""
    proc, info = start_side_helper(args.jaxmarl_python, args.jaxmarl_src, str(HELPER))
    return proc, {"run": proc is not None, **info}


def timed_runs(sides: Sides, names: list[str], label: str) -> dict[str, Any]:
    """Each program run once untimed, then ``--repeats`` seeds with the order rotating;
    run seconds and per-update returns of each, by name."""
    for name in names:
        sides.run(name, sides.args.seed)  # first runs are slower
    runs: dict[str, list[float]] = {name: [] for name in names}
    curves: dict[str, list[list[float] | None]] = {name: [] for name in names}
    for r in range(sides.args.repeats):
        seed = sides.args.seed + r
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run_s, curve = sides.run(name, seed)
            runs[name].append(run_s)
            curves[name].append(curve)
        log(
            f"[offpolicy] {label} seed {seed}: "
            + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items())
        )
    return {"runs": runs, "curves": curves}


def throughput(
    timing: dict[str, Any], compiles: dict[str, dict[str, Any]], env_steps: int
) -> dict[str, Any]:
    """``side_row`` of every program, keyed by the names in ``compiles``."""
    return {
        side: side_row(c["compile_s"], timing["runs"][c["name"]], env_steps)
        for side, c in compiles.items()
    }


def compile_pair(
    sides: Sides, name: str, file: str, alg: str, overrides: dict[str, Any], mixer: str
) -> tuple[dict[str, dict[str, Any]], QConfig, int]:
    """JaxMARL's program ``name`` and jmarl's with the same numbers; their compile facts by
    side, jmarl's config and the env steps of one run."""
    total = overrides["TOTAL_TIMESTEPS"]
    log(f"[offpolicy] {name}: compiling both sides")
    jx = sides.compile_jaxmarl(name, file, alg, overrides)
    cfg = q_config(jx["config"], mixer)
    jm = sides.compile_jmarl(f"jmarl/{name}", cfg, total)
    compiles = {"jmarl": {**jm, "name": f"jmarl/{name}"}}
    if not jx.get("absent"):
        if jx["num_updates"] != jm["num_updates"]:
            raise RuntimeError(f"update counts differ: {jx['num_updates']} vs {jm['num_updates']}")
        compiles["jaxmarl"] = {"compile_s": jx["compile_s"], "name": name, "config": jx["config"]}
    return compiles, cfg, jm["num_updates"] * cfg.steps_per_update


def side_ratios(sides_out: dict[str, Any], other: str, suffix: str = "") -> dict[str, Any]:
    """jmarl / ``other`` of env steps/s (best and median run) and compile seconds."""
    jm, jx = sides_out["jmarl"], sides_out.get(other, {})
    return {
        f"ratio_env_steps_per_s{suffix}": ratio(jm["env_steps_per_s"], jx.get("env_steps_per_s")),
        f"ratio_env_steps_per_s_median{suffix}": ratio(
            jm["env_steps_per_s_median"], jx.get("env_steps_per_s_median")
        ),
        f"ratio_compile_s{suffix}": ratio(jm["compile_s"], jx.get("compile_s")),
    }


def returns_at(
    sides: Sides, name: str, overrides: dict, jmarl_curves: list, steps_per_update: int
) -> dict[str, Any]:
    """Per-agent returns at equal env steps: jmarl's from its timed runs, JaxMARL's from a
    second program that reports each update through the stubbed ``wandb.log`` (run on the
    same seeds; its run seconds show what the callback costs)."""
    logged = {**overrides, "WANDB_MODE": "online"}
    sides.compile_jaxmarl(f"{name}/logged", "vdn_ff", "vdn_ff_mpe", logged)
    seeds = [sides.args.seed + r for r in range(sides.args.repeats)]
    runs = [sides.run(f"{name}/logged", seed) for seed in seeds]
    return {
        "seeds": seeds,
        "jmarl": return_curve(jmarl_curves, steps_per_update),
        "jaxmarl": return_curve([curve for _, curve in runs], steps_per_update),
        "jaxmarl_with_log_callback_runs_s": [run_s for run_s, _ in runs],
    }


def compare_vdn_at(sides: Sides, num_envs: int) -> dict[str, Any]:
    """jmarl VDN vs JaxMARL ``vdn_ff`` (two hidden layers; and as shipped where asked)."""
    args = sides.args
    base = {**EVAL_OFF, "NUM_ENVS": num_envs, "TOTAL_TIMESTEPS": args.vdn_steps}
    base.update(QUICK_VDN if args.quick else {})
    matched = {**base, "NUM_LAYERS": 4}
    name = f"vdn/envs{num_envs}"
    compiles, cfg, env_steps = compile_pair(sides, name, "vdn_ff", "vdn_ff_mpe", matched, "vdn")
    if "jaxmarl" in compiles and num_envs in args.shipped_envs:
        shipped = sides.compile_jaxmarl(f"{name}/shipped", "vdn_ff", "vdn_ff_mpe", base)
        compiles["jaxmarl_shipped"] = {**shipped, "name": f"{name}/shipped"}
    timing = timed_runs(sides, [c["name"] for c in compiles.values()], name)
    out = throughput(timing, compiles, env_steps)
    row: dict[str, Any] = {
        "num_envs": num_envs,
        "env_steps_per_run": env_steps,
        "num_updates": env_steps // cfg.steps_per_update,
        **out,
        **side_ratios(out, "jaxmarl"),
    }
    if "jaxmarl_shipped" in out:
        row.update(side_ratios(out, "jaxmarl_shipped", "_vs_shipped"))
    if "jaxmarl" in compiles and num_envs in args.returns_envs:
        curves = timing["curves"][compiles["jmarl"]["name"]]
        row["returns"] = returns_at(sides, name, matched, curves, cfg.steps_per_update)
    log(f"[offpolicy] {name}: jmarl/JaxMARL {row['ratio_env_steps_per_s']}")
    return row


def vdn_section(sides: Sides) -> dict[str, Any]:
    """The ``vdn`` part of the JSON: one :func:`compare_vdn_at` row per ``--envs``."""
    rows = [compare_vdn_at(sides, e) for e in sides.args.envs]
    ratios = [r["ratio_env_steps_per_s"] for r in rows if r["ratio_env_steps_per_s"]]
    overrides = {**EVAL_OFF, "NUM_LAYERS": 4, **(QUICK_VDN if sides.args.quick else {})}
    config = sides.config("vdn_ff_mpe", overrides)
    return {
        "jaxmarl_file": "baselines/QLearning/vdn_ff.py (unchanged; config/alg/vdn_ff_mpe.yaml)",
        "jaxmarl_overrides": {"all rows": overrides, "jaxmarl_shipped": "NUM_LAYERS as shipped"},
        "jaxmarl_config": config,
        "jmarl_config": dataclasses.asdict(q_config(config, "vdn")),
        "jmarl_config_differs_by_row": ["num_envs"],
        "sides": {
            "jmarl": "jmarl VDN, hidden_sizes (64, 64), on jmarl simple_spread N=3",
            "jaxmarl": "vdn_ff.py with NUM_LAYERS 4: two hidden layers of 64 (like for like)",
            "jaxmarl_shipped": "vdn_ff.py as shipped, NUM_LAYERS 2: no hidden layer (a linear "
            "Q on the observation), against the same jmarl (64, 64) row",
        },
        "throughput_from": "best run per side; *_median from the median run",
        "ratio": "jmarl / JaxMARL",
        "ratio_env_steps_per_s_geomean": math.exp(np.mean(np.log(ratios))) if ratios else None,
        "target": ">= 1.5x (issue 13)",
        "returns_note": RETURNS_NOTE,
        "differences": VDN_DIFFERENCES,
        "rows": rows,
    }


def compare_qmix(sides: Sides) -> dict[str, Any]:
    """jmarl QMIX (feed-forward) vs JaxMARL ``qmix_rnn`` (recurrent): throughput only."""
    args = sides.args
    overrides = {**EVAL_OFF, "TOTAL_TIMESTEPS": args.qmix_steps}
    overrides.update(QUICK_QMIX if args.quick else {})
    compiles, cfg, env_steps = compile_pair(
        sides, "qmix", "qmix_rnn", "ql_rnn_mpe", overrides, "qmix"
    )
    timing = timed_runs(sides, [c["name"] for c in compiles.values()], "qmix")
    out = throughput(timing, compiles, env_steps)
    return {
        "label": QMIX_LABEL,
        "jaxmarl_file": "baselines/QLearning/qmix_rnn.py (unchanged; config/alg/ql_rnn_mpe.yaml)",
        "jaxmarl_overrides": overrides,
        "jaxmarl_config": compiles.get("jaxmarl", {}).get("config"),
        "jmarl_config": dataclasses.asdict(cfg),
        "env_steps_per_run": env_steps,
        "num_updates": env_steps // cfg.steps_per_update,
        **out,
        **side_ratios(out, "jaxmarl"),
        "returns": "not compared: JaxMARL's logged return of a rollout that resets its envs "
        "every update is diluted by the steps before its first episode ends",
    }


def memory_of_seeds(sides: Sides) -> dict[str, Any]:
    """XLA memory analysis of ``jit(vmap(train))`` over K seeds, both sides, compiled only,
    with the like-for-like VDN config at 32 envs."""
    args = sides.args
    overrides = {**EVAL_OFF, "NUM_LAYERS": 4, "TOTAL_TIMESTEPS": args.vdn_steps}
    overrides.update(QUICK_VDN if args.quick else {})
    cfg = q_config(sides.config("vdn_ff_mpe", overrides), "vdn")
    trainer = jmarl_trainer(cfg, args.vdn_steps)
    env = jmarl.make("simple_spread", num_agents=3)
    per_seed = replay_bytes(example_item(env.spec, env.spec.action_space.n), cfg.buffer_size)
    rows = []
    for k in args.memory_seeds:
        log(f"[offpolicy] memory: {k} seeds")
        keys = jax.random.split(jax.random.key(args.seed), k)
        compiled, compile_s = compile_jit(jax.vmap(trainer.train), keys)
        jm = {"compile_s": compile_s, "memory": memory_stats(compiled)}
        jm.update(replay_bytes_per_seed=per_seed, replay_bytes_all_seeds=k * per_seed)
        row: dict[str, Any] = {"seeds": k, "jmarl": jm}
        if sides.proc is not None:
            request = {"op": "memory", "file": "vdn_ff", "alg": "vdn_ff_mpe", "seeds": k}
            jx = ask(sides.proc, {**request, "overrides": overrides})
            jx["buffer_bytes_all_seeds"] = k * jx["buffer_bytes_per_seed"]
            row["jaxmarl"] = jx
            row["ratio_total_bytes"] = ratio(
                jm["memory"].get("total_bytes"), jx["memory"].get("total_bytes")
            )
        rows.append(row)
    return {
        "program": "jax.jit(jax.vmap(train)) over K seed keys, compiled, not run",
        "total_is": "XLA's argument + output + temp bytes (its static peak; the buffers are "
        "part of the output: train returns its final state)",
        "num_envs": cfg.num_envs,
        "buffer_transitions_per_seed": cfg.buffer_size,
        "rows": rows,
    }


def main() -> None:
    args = parse_args()
    arm_watchdog(300 if args.quick else 1800)
    info = machine_info()
    affinity = sorted(os.sched_getaffinity(0))
    sides = Sides(args)
    try:
        vdn = vdn_section(sides)
        qmix = None if args.skip_qmix else compare_qmix(sides)
        memory = memory_of_seeds(sides)
    finally:
        sides.close()
    emit(
        {
            "benchmark": "offpolicy_throughput",
            "quick": args.quick,
            **info,
            "cpu_affinity": affinity,
            "note": args.note,
            "env": "jmarl simple_spread N=3 vs JaxMARL MPE_simple_spread_v3 (25-step episodes)",
            "repeats": args.repeats,
            "seeds": [args.seed + r for r in range(args.repeats)],
            "jaxmarl": sides.greeting,
            "vdn": vdn,
            "qmix": qmix if qmix is not None else "skipped (--skip-qmix)",
            "memory_vmapped_seeds": memory,
        }
    )


if __name__ == "__main__":
    main()
