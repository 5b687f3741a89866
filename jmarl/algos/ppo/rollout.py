"""Collecting a rollout of ``T`` steps from ``E`` vmapped environments."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams
from jmarl.env.base import Env, EnvState, TimeStep
from jmarl.types import Array, PRNGKey, PyTree


class Transition(NamedTuple):
    """One step of experience; in a rollout every leaf has leading ``[T, E]``.

    ``obs`` ``[.., N, ...]``; ``state`` ``[.., S]``; ``action`` ``[.., N, ...]``;
    ``log_prob``/``value``/``reward`` ``f32[.., N]``; ``discount`` ``f32[.., N]``
    (0 where the agent's episode ended at this step); ``alive`` ``bool[.., N]`` (the agent
    acted at this step: only these rows enter the loss); ``action_mask`` ``bool[.., N, A]``
    or None.
    """

    obs: PyTree
    state: Array
    action: PyTree
    log_prob: Array
    value: Array
    reward: Array
    discount: Array
    alive: Array
    action_mask: Array | None


class EpisodeStats(NamedTuple):
    """Running per-env returns and totals of the episodes completed since the last reset.

    ``running`` ``f32[E, N]``; ``return_sum`` sums the per-agent return (mean over agents)
    of each completed episode; ``length_sum`` their lengths; ``episodes`` how many completed.
    """

    running: Array
    length: Array
    return_sum: Array
    length_sum: Array
    episodes: Array


class RolloutState(NamedTuple):
    """Carry between rollouts: env states ``[E]``, last timesteps ``[E]``, episode stats."""

    env_state: EnvState
    timestep: TimeStep
    stats: EpisodeStats


def init_rollout_state(env: Env, key: PRNGKey, num_envs: int) -> RolloutState:
    """Resets ``num_envs`` environments."""
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
    return RolloutState(env_state, ts, stats)


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


def make_rollout(
    env: Env, ac: ActorCritic, rollout_length: int
) -> Callable[[ActorCriticParams, RolloutState, PRNGKey], tuple[RolloutState, Transition]]:
    """Returns ``rollout(params, rstate, key) -> (rstate, Transition[T, E, ...])``."""
    policy = jax.vmap(ac.policy, in_axes=(None, 0))
    value = jax.vmap(ac.value, in_axes=(None, 0, 0))
    env_step = jax.vmap(env.step)

    def one_step(
        carry: tuple[ActorCriticParams, RolloutState], key: PRNGKey
    ) -> tuple[tuple[ActorCriticParams, RolloutState], Transition]:
        params, rs = carry
        ts = rs.timestep
        k_act, k_env = jax.random.split(key)
        dist_params = policy(params.actor, ts.obs)
        action = ac.distribution.sample(k_act, dist_params, ts.action_mask)
        log_prob = ac.distribution.log_prob(dist_params, action, ts.action_mask)
        v = value(params.critic, ts.obs, ts.state)
        num_envs = v.shape[0]
        env_state, next_ts = env_step(jax.random.split(k_env, num_envs), rs.env_state, action)
        ended = next_ts.terminated | next_ts.truncated | next_ts.done[:, None]
        tr = Transition(
            obs=ts.obs,
            state=ts.state,
            action=action,
            log_prob=log_prob,
            value=v,
            reward=next_ts.reward.astype(jnp.float32),
            discount=1.0 - ended.astype(jnp.float32),
            alive=ts.alive,
            action_mask=ts.action_mask,
        )
        stats = update_stats(rs.stats, next_ts)
        return (params, RolloutState(env_state, next_ts, stats)), tr

    def rollout(
        params: ActorCriticParams, rs: RolloutState, key: PRNGKey
    ) -> tuple[RolloutState, Transition]:
        keys = jax.random.split(key, rollout_length)
        (_, rs), traj = jax.lax.scan(one_step, (params, rs), keys)
        return rs, traj

    return rollout
