"""Host-side driver of ``jmarl train`` / ``jmarl evaluate``.

The compiled program trains all seeds for ``chunk`` updates at a time (``vmap`` over seeds,
``lax.scan`` over updates); between chunks the host writes metrics, checks for NaNs and
saves an atomic checkpoint of the whole :class:`~jmarl.algos.base.TrainerState`, so a
failing run always leaves its last good checkpoint and ``resume`` continues from it with the
same compiled chunk: an interrupted and resumed run computes exactly what an uninterrupted one
does.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos.base import Trainer, TrainerState
from jmarl.algos.ppo.config import PPOConfig
from jmarl.env.base import Env
from jmarl.env.registry import make
from jmarl.eval.evaluate import EVAL_CHUNK, evaluate_in_chunks, make_evaluate
from jmarl.eval.nash_conv import make_nash_conv
from jmarl.eval.policies import actor_critic_policy, greedy_policy
from jmarl.modes import LeagueConfig, apply_mode, member_names
from jmarl.run.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_checkpoint,
    load_trainer_state,
    resume_part,
)
from jmarl.run.config import ENV_ARGUMENTS, RunConfig, load_run_config, population_config
from jmarl.run.league_report import league_report, pool_mixture, write_league
from jmarl.run.recorder import Progress, RunRecorder
from jmarl.run.resources import check_fits, program_bytes, tree_bytes


def build_env(cfg: RunConfig) -> Env:
    """The JAX env named by ``cfg``: its env settings (those the factory takes, see
    :data:`~jmarl.run.config.ENV_ARGUMENTS`) and ``env_kwargs``."""
    settings = {arg: getattr(cfg, name) for name, arg in ENV_ARGUMENTS.items()}
    kwargs = {arg: v for arg, v in settings.items() if v is not None}
    return make(cfg.env, **kwargs, **(cfg.env_kwargs or {}))


def build_mapping_fn(cfg: RunConfig) -> Callable[[str], str] | None:
    """The custom ``policy_mapping_fn`` of ``cfg.policy_mapping`` (None without one)."""
    if cfg.policy_mapping is None:
        return None
    table = dict(cfg.policy_mapping)

    def mapping_fn(agent: str) -> str:
        if agent not in table:
            raise ValueError(f"policy_mapping has no entry for agent {agent!r}")
        return table[agent]

    return mapping_fn


def build_trainer(cfg: RunConfig, env: Env) -> Trainer:
    """The trainer of ``cfg.algo`` for ``env``, with the agent -> policy mapping of ``cfg``, in
    ``cfg.mode``."""
    mapping = make_policy_mapping(env.spec, cfg.sharing, cfg.agent_groups, build_mapping_fn(cfg))
    trainer = cfg.algorithm.make(env, cfg.algo_config, cfg.steps, mapping)
    return apply_mode(trainer, cfg.mode, cfg.turn_length, env, population_config(cfg))


def chunk_length(num_updates: int, log_every: int) -> int:
    """Updates per compiled chunk: ``log_every`` or about 50 chunks, dividing ``num_updates``."""
    target = log_every if log_every > 0 else max(1, math.ceil(num_updates / 50))
    target = min(target, num_updates)
    small = [d for d in range(1, math.isqrt(num_updates) + 1) if num_updates % d == 0]
    divisors = small + [num_updates // d for d in small]  # O(sqrt(n)), not O(n): no hang
    return max(d for d in divisors if d <= target)


def with_env_steps(metrics: dict[str, Any], steps_per_update: int) -> dict[str, Any]:
    """``metrics`` (on the host) with ``env_steps`` computed exactly from the int32 ``update``
    counter: in int64, where the compiled program's int32 would wrap past 2**31."""
    metrics = jax.device_get(metrics)
    return {**metrics, "env_steps": np.asarray(metrics["update"], np.int64) * steps_per_update}


def _compile_chunk(trainer: Trainer, k: int, runner: Any) -> Callable:
    """``runner``: the state ``[seeds, ...]`` or only its shapes (``jax.eval_shape``)."""

    def chunk(r: TrainerState) -> tuple[TrainerState, dict]:
        return jax.lax.scan(lambda c, _: trainer.step(c), r, None, length=k)

    return jax.jit(jax.vmap(chunk), donate_argnums=0).lower(runner).compile()


def compile_training(trainer: Trainer, k: int, keys: jax.Array) -> Callable:
    """The compiled chunk of ``k`` updates for the seeds' ``keys``, compiled from shapes only
    after checking that the training state fits; then XLA's memory analysis of the program
    must fit too.

    :raises ResourceError: naming the estimate and the flags to lower; nothing was allocated.
    """
    state = jax.eval_shape(jax.vmap(trainer.init), keys)
    check_fits(2 * tree_bytes(state), "the training state (--seeds x --num-envs envs)")
    chunk = _compile_chunk(trainer, k, state)
    check_fits(program_bytes(chunk), f"training ({k} updates per compiled chunk)")
    return chunk


def _restore(trainer: Trainer, keys: jax.Array, out_dir: Path) -> tuple[TrainerState, int]:
    """The training state of ``out_dir``'s checkpoint and its update count."""
    state, meta = load_trainer_state(out_dir, jax.eval_shape(jax.vmap(trainer.init), keys))
    state = jax.device_put(state)
    update = int(meta.get("update", -1))
    if not np.all(np.asarray(state.update) == update):
        raise CheckpointError(f"checkpoint {out_dir / CHECKPOINT_NAME} is inconsistent")
    return state, update


def train_run(
    cfg: RunConfig, out_dir: Path, progress: Progress | None = None, resume: bool = False
) -> dict[str, Any]:
    """Trains ``cfg`` writing ``config.json``, ``metrics.jsonl``, ``returns.png`` and a
    checkpoint into ``out_dir``; returns a summary dict.

    :param progress: called with ``(0, {})`` before compiling (and again, with the env steps
        so far, once the run folder is written), then after each chunk with (env steps done,
        last metrics row).
    :param resume: continue the run in ``out_dir`` from its checkpoint (from the start if
        it has none yet); ``cfg`` must be its configuration.
    :raises TrainingError: on a non-finite loss or parameters (checkpoint left intact).
    :raises ResourceError: the program cannot fit in memory (nothing written).
    :raises RunInterrupted: Ctrl-C or SIGTERM under
        :func:`~jmarl.run.recorder.stop_on_signals`.
    """
    env = build_env(cfg)
    trainer = build_trainer(cfg, env)
    t_start = time.perf_counter()
    if progress is not None:
        progress(0, {})  # compiling
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.seeds)
    k = chunk_length(trainer.num_updates, cfg.log_every)
    done, runner = 0, None
    if resume and (out_dir / CHECKPOINT_NAME).is_file():
        runner, done = _restore(trainer, keys, out_dir)
        if done % k or done > trainer.num_updates:
            raise CheckpointError(
                f"checkpoint {out_dir / CHECKPOINT_NAME} is at update {done}, not the end of "
                f"a chunk of {k} updates of this run"
            )
    chunk = compile_training(trainer, k, keys)  # before anything is written
    recorder = RunRecorder(cfg, out_dir, progress, trainer.num_updates, resume, t_start)
    try:
        if resume:
            recorder.resume_from(done)
        recorder.started()
        if runner is None:
            runner = jax.jit(jax.vmap(trainer.init))(keys)
        recorder.compiled()
        population = population_config(cfg)
        pool_metric = pool_nash_conv_metric(trainer, env, population)
        for _ in range(done // k, trainer.num_updates // k):
            runner, metrics = chunk(runner)
            metrics = with_env_steps(metrics, trainer.steps_per_update)
            if pool_metric is not None:
                metrics["nash_conv_pool"] = pool_metric(runner.learner, k)
            recorder.record(metrics, runner.learner, resume_part(runner))
        if population is not None:
            report = league_report(trainer, env, population, runner.learner)
            write_league(out_dir, report, recorder.rows, member_names(population))
        return recorder.finish()
    finally:
        recorder.close()


def pool_nash_conv_metric(
    trainer: Trainer, env: Env, population: LeagueConfig | None
) -> Callable[[Any, int], np.ndarray] | None:
    """For self-play / league runs on games :func:`jmarl.nash_conv` enumerates (feed-forward
    policies): ``metric(learner [seeds, ...], k) -> f64[seeds, k]``, the exact NashConv of the
    pool's uniform mixture after a chunk of ``k`` updates (NaN on the chunk's other rows)."""
    if population is None or env.chance_outcomes is None:
        return None
    nash_conv = make_nash_conv(env)

    def metric(learner: Any, k: int) -> np.ndarray:
        learner = jax.device_get(learner)
        seeds = jax.tree.leaves(learner)[0].shape[0]
        out = np.full((seeds, k), np.nan)
        for s in range(seeds):
            ls = jax.tree.map(lambda x, s=s: x[s], learner)
            out[s, -1] = nash_conv(pool_mixture(trainer, env, ls))
        return out

    return metric


def evaluate_run(
    out_dir: Path, episodes: int = 100, seed: int = 0, deterministic: bool = False
) -> dict[str, Any]:
    """Loads the checkpoint in ``out_dir`` and evaluates it for ``episodes`` episodes per seed."""
    cfg = load_run_config(out_dir)
    env = build_env(cfg)
    trainer = build_trainer(cfg, env)
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.seeds)
    template = jax.eval_shape(jax.vmap(trainer.init_learner), keys)
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    learner, meta = load_checkpoint(Path(out_dir), template)
    size = min(episodes, EVAL_CHUNK)  # memory bounded by the chunk, not by --episodes
    evaluate = jax.jit(jax.vmap(make_evaluate(env, trainer, size, deterministic), (0, None)))
    params = jax.vmap(trainer.acting_params)(learner)
    res = evaluate_in_chunks(lambda k: evaluate(params, k), episodes, size, jax.random.key(seed))
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
    if env.spec.zero_sum:
        out["return_per_seat"] = [float(x) for x in np.mean(res.agent_returns, axis=(0, 2))]
        versus = make_evaluate(env, trainer, size, deterministic, versus_random=True)
        play = jax.jit(jax.vmap(versus, (0, None, None)))
        key = jax.random.fold_in(jax.random.key(seed), 1)
        out.update(versus_random_report(play, params, episodes, size, key))
    out.update(nash_conv_report(env, trainer, params, cfg.seeds, deterministic))
    return out


def versus_random_report(
    play: Callable, params: Any, episodes: int, size: int, key: jax.Array
) -> dict[str, Any]:
    """``win_rate`` / ``draw_rate`` of the policy against uniformly random play in a
    two-player game (mean over both seats, and ``..._per_seat``); ``play(params, key, seat)``
    evaluates the policy in ``seat`` against random play (one program for both seats:
    ``make_evaluate(..., versus_random=True)``)."""
    wins, draws = [], []
    for seat in range(2):
        seat_key = jax.random.fold_in(key, seat)
        run = functools.partial(lambda p, s, k: play(p, k, s), params, jnp.asarray(seat))
        res = evaluate_in_chunks(run, episodes, size, seat_key)
        mine, theirs = res.agent_returns[:, seat], res.agent_returns[:, 1 - seat]
        wins.append(float(np.mean(mine > theirs)))
        draws.append(float(np.mean(mine == theirs)))
    return {
        "win_rate": float(np.mean(wins)),
        "draw_rate": float(np.mean(draws)),
        "win_rate_per_seat": wins,
        "draw_rate_per_seat": draws,
    }


def nash_conv_report(
    env: Env, trainer: Trainer, params: Any, seeds: int, deterministic: bool
) -> dict[str, Any]:
    """``{"nash_conv": mean over seeds[, "nash_conv_per_seed": [...]]}`` for two-player games
    that :func:`jmarl.nash_conv` enumerates (matrix games, poker) and feed-forward policies;
    ``{}`` otherwise. The policy is the exact IPPO/MAPPO action distribution, or the greedy
    action (other algorithms, or ``deterministic``). ``params`` has a leading seed axis."""
    if env.chance_outcomes is None or env.spec.num_agents != 2:
        return {}
    if jax.tree.leaves(trainer.init_carry(1)):  # recurrent: a policy of more than the obs
        return {}
    exact = isinstance(trainer.config, PPOConfig) and not deterministic
    build = actor_critic_policy if exact else greedy_policy
    nash_conv = make_nash_conv(env)
    per_seed = [
        nash_conv(build(trainer, jax.tree.map(lambda x, s=s: x[s], params), env.spec))
        for s in range(seeds)
    ]
    out: dict[str, Any] = {"nash_conv": float(np.mean(per_seed))}
    if seeds > 1:
        out["nash_conv_per_seed"] = per_seed
    return out
