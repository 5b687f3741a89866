"""Host-side driver of ``jmarl train`` / ``jmarl evaluate``.

The compiled program trains all seeds for ``chunk`` updates at a time (``vmap`` over seeds,
``lax.scan`` over updates); between chunks the host writes metrics, checks for NaNs and
saves an atomic checkpoint, so a failing run always leaves its last good checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jmarl.algos.ppo.train import RunnerState, Trainer, make_ppo
from jmarl.env.base import Env
from jmarl.env.registry import make
from jmarl.training.checkpoint import load_checkpoint, save_checkpoint
from jmarl.training.config import RunConfig, from_dict, to_dict
from jmarl.training.evaluate import make_evaluate
from jmarl.training.plotting import plot_returns


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the last good checkpoint is kept."""


def build_env(cfg: RunConfig) -> Env:
    """The JAX env named by ``cfg``."""
    return make(
        cfg.env,
        num_agents=cfg.agents,
        max_steps=cfg.episode_length,
        continuous_actions=cfg.continuous_actions,
    )


def build_trainer(cfg: RunConfig, env: Env) -> Trainer:
    """The PPO trainer for ``cfg`` (algo decides the critic; sharing the mapping)."""
    mapping_fn: Callable[[str], str] | None = None
    if cfg.policy_mapping is not None:
        table = dict(cfg.policy_mapping)

        def mapping_fn(agent: str) -> str:
            if agent not in table:
                raise ValueError(f"policy_mapping has no entry for agent {agent!r}")
            return table[agent]

    return make_ppo(env, cfg.ppo, cfg.steps, cfg.sharing, cfg.agent_groups, mapping_fn)


def chunk_length(num_updates: int, log_every: int) -> int:
    """Updates per compiled chunk: ``log_every`` or about 50 chunks, dividing ``num_updates``."""
    target = log_every if log_every > 0 else max(1, math.ceil(num_updates / 50))
    target = min(target, num_updates)
    return max(d for d in range(1, target + 1) if num_updates % d == 0)


def _finite(x: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(v)))) for v in jax.tree.leaves(x))


def _json_value(v: Any) -> Any:
    v = np.asarray(v)
    if v.ndim:
        return [_json_value(x) for x in v]
    f = float(v)
    if not math.isfinite(f):
        return None
    return int(f) if np.issubdtype(v.dtype, np.integer) else f


def _metric_rows(metrics: dict[str, np.ndarray], t0: float, t1: float) -> list[dict[str, Any]]:
    """Per-update rows from chunk metrics ``{name: [seeds, k]}`` (mean over seeds)."""
    k = metrics["env_steps"].shape[1]
    rows = []
    for i in range(k):
        row: dict[str, Any] = {
            "env_steps": int(metrics["env_steps"][0, i]),
            "wall_time_s": round(t0 + (t1 - t0) * (i + 1) / k, 3),
        }
        for name, v in metrics.items():
            if name == "env_steps":
                continue
            col = np.asarray(v[:, i], dtype=float)
            row[name] = _json_value(np.nanmean(col) if np.any(np.isfinite(col)) else np.nan)
            if name == "episode_return" and col.shape[0] > 1:
                row["episode_return_per_seed"] = _json_value(col)
        rows.append(row)
    return rows


def _compile_chunk(trainer: Trainer, k: int, runner: RunnerState) -> Callable:
    def chunk(r: RunnerState) -> tuple[RunnerState, dict]:
        return jax.lax.scan(lambda c, _: trainer.step(c), r, None, length=k)

    return jax.jit(jax.vmap(chunk), donate_argnums=0).lower(runner).compile()


def train_run(
    cfg: RunConfig, out_dir: Path, progress: Callable[[int, dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Trains ``cfg`` writing ``config.json``, ``metrics.jsonl``, ``returns.png`` and a
    checkpoint into ``out_dir``; returns a summary dict.

    :param progress: called once before compiling with ``(0, {})``, then after each chunk
        with (env steps done, last metrics row).
    :raises TrainingError: on a non-finite loss or parameters (checkpoint left intact).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.out != str(out_dir):
        cfg = replace(cfg, out=str(out_dir))
    (out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    t_start = time.perf_counter()
    env = build_env(cfg)
    trainer = build_trainer(cfg, env)
    if progress is not None:
        progress(0, {})  # configuration is valid; compilation starts
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.seeds)
    runner = jax.jit(jax.vmap(trainer.init))(keys)
    k = chunk_length(trainer.num_updates, cfg.log_every)
    chunk = _compile_chunk(trainer, k, runner)
    compile_s = time.perf_counter() - t_start
    rows: list[dict[str, Any]] = []
    t_prev = time.perf_counter() - t_start
    with (out_dir / "metrics.jsonl").open("w") as f:
        for c in range(trainer.num_updates // k):
            runner, m = chunk(runner)
            m = jax.device_get(m)
            t_now = time.perf_counter() - t_start
            new_rows = _metric_rows(m, t_prev, t_now)
            t_prev = t_now
            for row in new_rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            rows.extend(new_rows)
            if not (_finite(m["loss"]) and _finite(runner.train_state.params)):
                bad = next(i for i, r in enumerate(new_rows) if r.get("loss") is None)
                raise TrainingError(
                    f"non-finite loss at update {c * k + bad + 1}; stopped. The last good "
                    f"checkpoint in {out_dir} is kept."
                )
            meta = {"update": (c + 1) * k, "env_steps": new_rows[-1]["env_steps"]}
            save_checkpoint(out_dir, runner.train_state, meta)
            if progress is not None:
                progress(new_rows[-1]["env_steps"], new_rows[-1])
    returns = np.asarray(
        [[np.nan if r["episode_return"] is None else r["episode_return"]] for r in rows]
    )[:, 0]
    per_seed = np.asarray(
        [r.get("episode_return_per_seed", [r["episode_return"]]) for r in rows], dtype=float
    ).T
    plot_returns(
        out_dir / "returns.png",
        [r["env_steps"] for r in rows],
        per_seed,
        f"{cfg.algo.upper()} ({cfg.sharing}) on {cfg.env}, N={cfg.agents}",
    )
    tail = returns[-max(1, len(returns) // 10) :]
    return {
        "out": str(out_dir),
        "env_steps": rows[-1]["env_steps"],
        "updates": len(rows),
        "final_episode_return": float(np.nanmean(tail)),
        "compile_s": round(compile_s, 2),
        "wall_time_s": round(time.perf_counter() - t_start, 2),
    }


def evaluate_run(
    out_dir: Path, episodes: int = 100, seed: int = 0, deterministic: bool = False
) -> dict[str, Any]:
    """Loads the checkpoint in ``out_dir`` and evaluates it for ``episodes`` episodes per seed."""
    cfg_path = Path(out_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{out_dir} has no config.json (not a jmarl run folder)")
    cfg = from_dict(json.loads(cfg_path.read_text()))
    env = build_env(cfg)
    trainer = build_trainer(cfg, env)
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.seeds)
    template = jax.eval_shape(jax.vmap(trainer.init), keys).train_state
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    train_state, meta = load_checkpoint(Path(out_dir), template)
    evaluate = jax.jit(
        jax.vmap(
            make_evaluate(env, trainer.actor_critic, episodes, deterministic), in_axes=(0, None)
        )
    )
    res = jax.device_get(evaluate(train_state.params.actor, jax.random.key(seed)))
    out: dict[str, Any] = {
        "episode_return": float(np.mean(res.returns)),
        "episode_return_std": float(np.std(res.returns)),
        "episode_length": float(np.mean(res.lengths)),
        "episodes": int(res.returns.size),
        "seeds": cfg.seeds,
        "env": cfg.env,
        "env_steps_trained": meta.get("env_steps"),
        "deterministic": deterministic,
    }
    if cfg.seeds > 1:
        out["episode_return_per_seed"] = [float(x) for x in np.mean(res.returns, axis=1)]
    return out
