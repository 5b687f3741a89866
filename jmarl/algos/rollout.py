"""Collecting rollouts with any algorithm's ``act``, and the training loop built around it.

:func:`make_trainer` turns an algorithm's four pieces (``init_learner``, ``act``, ``learn``,
``acting_params``) into a :class:`~jmarl.algos.base.Trainer` whose ``train`` is one jittable
function: ``jax.jit(jax.vmap(trainer.train))(keys)`` trains one seed per key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jmarl.agents.sharing import PolicyMapping
from jmarl.algos.base import (
    ActOutput,
    Carry,
    EpisodeStats,
    Metrics,
    RolloutState,
    Trainer,
    TrainerState,
    TrainOutput,
    Transition,
)
from jmarl.config_check import INT32_MAX, ConfigError
from jmarl.env.base import Env, TimeStep, step_batch
from jmarl.types import Params, PRNGKey

Act = Callable[..., ActOutput]
Rollout = Callable[[Params, RolloutState, PRNGKey], tuple[RolloutState, Transition]]


def init_rollout_state(env: Env, key: PRNGKey, num_envs: int, carry: Carry = ()) -> RolloutState:
    """Resets ``num_envs`` environments; ``carry`` is the policy carry ``[E, ...]``."""
    env_state, ts = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    n = env.spec.num_agents
    zeros = jnp.zeros((), jnp.float32)
    stats = EpisodeStats(
        jnp.zeros((num_envs, n), jnp.float32),
        jnp.zeros((num_envs,), jnp.int32),
        zeros,
        zeros,
        zeros,
    )
    return RolloutState(env_state, ts, stats, carry)


def update_stats(stats: EpisodeStats, ts: TimeStep) -> EpisodeStats:
    """Adds one vmapped step's rewards ``[E, N]``; books episodes that ended (``ts.done``)."""
    running = stats.running + ts.reward
    length = stats.length + 1
    done = ts.done.astype(jnp.float32)
    return EpisodeStats(
        running=jnp.where(ts.done[:, None], 0.0, running),
        length=jnp.where(ts.done, 0, length),
        return_sum=stats.return_sum + jnp.sum(done * running.mean(axis=-1)),
        length_sum=stats.length_sum + jnp.sum(done * length),
        episodes=stats.episodes + jnp.sum(done),
    )


def reset_totals(stats: EpisodeStats) -> EpisodeStats:
    """Zeroes the completed-episode totals, keeping the running returns."""
    zero = jnp.zeros((), jnp.float32)
    return stats._replace(return_sum=zero, length_sum=zero, episodes=zero)


def make_rollout(env: Env, act: Act, rollout_length: int) -> Rollout:
    """Returns ``rollout(params, rstate, key) -> (rstate, Transition[T, E, ...])``.

    Each step splits its key into an acting and an env key; the env key steps all envs
    (:func:`jmarl.env.base.step_batch`: split once more per env). The transition's
    ``discount`` is 0 where the *next* timestep ends the agent's episode (terminated,
    truncated, or the env's episode is over).
    """
    env_step = step_batch(env)

    def one_step(
        carry: tuple[Params, RolloutState], key: PRNGKey
    ) -> tuple[tuple[Params, RolloutState], Transition]:
        params, rs = carry
        ts = rs.timestep
        k_act, k_env = jax.random.split(key)
        out = act(params, ts, k_act, rs.carry)
        env_state, next_ts = env_step(k_env, rs.env_state, out.action)
        ended = next_ts.terminated | next_ts.truncated | next_ts.done[:, None]
        tr = Transition(
            obs=ts.obs,
            state=ts.state,
            action=out.action,
            reward=next_ts.reward.astype(jnp.float32),
            discount=1.0 - ended.astype(jnp.float32),
            alive=ts.alive,
            action_mask=ts.action_mask,
            extras=out.extras,
        )
        stats = update_stats(rs.stats, next_ts)
        return (params, RolloutState(env_state, next_ts, stats, out.carry)), tr

    def rollout(params: Params, rs: RolloutState, key: PRNGKey) -> tuple[RolloutState, Transition]:
        keys = jax.random.split(key, rollout_length)
        (_, rs), traj = jax.lax.scan(one_step, (params, rs), keys)
        return rs, traj

    return rollout


def episode_metrics(stats: EpisodeStats, traj: Transition) -> Metrics:
    """``episode_return`` (NaN when no episode ended), ``episode_length``, ``episodes`` and
    ``step_reward`` of one rollout."""
    return {
        "episode_return": jnp.where(
            stats.episodes > 0, stats.return_sum / jnp.maximum(stats.episodes, 1), jnp.nan
        ),
        "episode_length": stats.length_sum / jnp.maximum(stats.episodes, 1),
        "episodes": stats.episodes,
        "step_reward": jnp.mean(traj.reward),
    }


def num_updates_for(steps_per_update: int, total_steps: int) -> int:
    """Updates that fit in ``total_steps`` env steps (at least one; at most 2**31-1, the
    int32 update counter's range)."""
    if total_steps < 1:
        raise ConfigError(f"total env steps must be >= 1, got {total_steps}")
    updates = max(1, total_steps // steps_per_update)
    if updates > INT32_MAX:
        raise ConfigError(
            f"{total_steps} env steps are {updates} updates of {steps_per_update} env steps; "
            f"at most {INT32_MAX} fit the update counter"
        )
    return updates


def make_trainer(
    env: Env,
    *,
    init_learner: Callable[[PRNGKey], Any],
    act: Act,
    learn: Callable[[Any, Transition, TimeStep, PRNGKey], tuple[Any, Metrics]],
    acting_params: Callable[[Any], Params],
    init_carry: Callable[[int], Carry],
    num_envs: int,
    rollout_length: int,
    num_updates: int,
    mapping: PolicyMapping,
    config: Any,
) -> Trainer:
    """The :class:`Trainer` of an algorithm given by its pieces (see :mod:`jmarl.algos.base`)."""
    rollout = make_rollout(env, act, rollout_length)

    def init(key: PRNGKey) -> TrainerState:
        k_params, k_env, k_run = jax.random.split(key, 3)
        rs = init_rollout_state(env, k_env, num_envs, init_carry(num_envs))
        return TrainerState(init_learner(k_params), rs, k_run, jnp.zeros((), jnp.int32))

    def step(state: TrainerState) -> tuple[TrainerState, Metrics]:
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        rs0 = state.rollout._replace(stats=reset_totals(state.rollout.stats))
        rs, traj = rollout(acting_params(state.learner), rs0, k_roll)
        learner, metrics = learn(state.learner, traj, rs.timestep, k_learn)
        n_upd = state.update + 1
        # env steps (n_upd * steps_per_update) are counted on the host, exactly: in int32
        # they would wrap past 2**31
        metrics = {**metrics, "update": n_upd}
        metrics.update(episode_metrics(rs.stats, traj))
        return TrainerState(learner, rs, key, n_upd), metrics

    def train(key: PRNGKey) -> TrainOutput:
        state = init(key)
        state, metrics = jax.lax.scan(lambda s, _: step(s), state, None, length=num_updates)
        return TrainOutput(state, metrics)

    return Trainer(
        init=init,
        step=step,
        train=train,
        act=act,
        init_carry=init_carry,
        learn=learn,
        init_learner=init_learner,
        acting_params=acting_params,
        num_updates=num_updates,
        num_envs=num_envs,
        rollout_length=rollout_length,
        mapping=mapping,
        config=config,
    )


def no_carry(num_envs: int) -> Carry:
    """The carry of a feed-forward policy: nothing."""
    del num_envs
    return ()
