"""The whole multi-agent PPO training loop as one jittable function.

>>> import jax, jmarl
>>> env = jmarl.make("simple_spread", num_agents=2, max_steps=5)
>>> cfg = jmarl.PPOConfig(num_envs=2, rollout_length=5, num_minibatches=1, num_epochs=1)
>>> trainer = jmarl.make_ppo(env, cfg, total_steps=20)
>>> out = jax.jit(trainer.train)(jax.random.key(0))
>>> out.metrics["env_steps"].shape
(2,)

``jax.jit(jax.vmap(trainer.train))(keys)`` trains one seed per key in one program.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.agents.sharing import PolicyMapping, make_policy_mapping
from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.networks import ActorCritic, make_actor_critic
from jmarl.algos.ppo.rollout import (
    RolloutState,
    init_rollout_state,
    make_rollout,
    reset_totals,
)
from jmarl.algos.ppo.update import TrainState, make_optimizer, make_update
from jmarl.env.base import Env
from jmarl.types import Array, PRNGKey


class RunnerState(NamedTuple):
    """The full carry of training: learner state, env state, RNG and update counter."""

    train_state: TrainState
    rollout_state: RolloutState
    key: PRNGKey
    update: Array


class TrainOutput(NamedTuple):
    """Final carry and per-update metrics (each ``[U]``; ``[K, U]`` under ``vmap`` over seeds)."""

    runner_state: RunnerState
    metrics: dict[str, Array]


class Trainer(NamedTuple):
    """Pure pieces of a training run.

    * ``init(key) -> RunnerState``
    * ``step(runner) -> (runner, metrics)``: one rollout plus one update
    * ``train(key) -> TrainOutput``: ``init`` then ``num_updates`` steps under ``lax.scan``
    """

    init: Callable[[PRNGKey], RunnerState]
    step: Callable[[RunnerState], tuple[RunnerState, dict[str, Array]]]
    train: Callable[[PRNGKey], TrainOutput]
    num_updates: int
    actor_critic: ActorCritic
    mapping: PolicyMapping
    config: PPOConfig


def num_updates_for(cfg: PPOConfig, total_steps: int) -> int:
    """Updates that fit in ``total_steps`` env steps (at least one)."""
    if total_steps < 1:
        raise ValueError(f"total env steps must be >= 1, got {total_steps}")
    return max(1, total_steps // cfg.steps_per_update)


def make_ppo(
    env: Env,
    cfg: PPOConfig,
    total_steps: int,
    sharing: str = "shared",
    agent_groups: Mapping[str, Sequence[str]] | None = None,
    policy_mapping_fn: Callable[[str], str] | None = None,
) -> Trainer:
    """Builds IPPO (``cfg.centralized_critic=False``) or MAPPO training for ``env``.

    :param total_steps: env steps (per seed) to train for; rounded down to whole updates.
    :param sharing: agent -> policy mapping mode (see :mod:`jmarl.agents.sharing`).
    """
    mapping = make_policy_mapping(env.spec, sharing, agent_groups, policy_mapping_fn)
    ac = make_actor_critic(env.spec, mapping, cfg)
    num_updates = num_updates_for(cfg, total_steps)
    optimizer = make_optimizer(cfg, num_updates)
    rollout = make_rollout(env, ac, cfg.rollout_length)
    update = make_update(ac, optimizer, cfg)
    last_value_fn = jax.vmap(ac.value, in_axes=(None, 0, 0))

    def init(key: PRNGKey) -> RunnerState:
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = ac.init(k_params)
        ts = TrainState(params, optimizer.init(params))
        rs = init_rollout_state(env, k_env, cfg.num_envs)
        return RunnerState(ts, rs, k_run, jnp.zeros((), jnp.int32))

    def step(runner: RunnerState) -> tuple[RunnerState, dict[str, Array]]:
        key, k_roll, k_upd = jax.random.split(runner.key, 3)
        params = runner.train_state.params
        rs0 = runner.rollout_state._replace(stats=reset_totals(runner.rollout_state.stats))
        rs, traj = rollout(params, rs0, k_roll)
        last_ts = rs.timestep
        last_value = last_value_fn(params.critic, last_ts.obs, last_ts.state)
        train_state, metrics = update(runner.train_state, traj, last_value, k_upd)
        n_upd = runner.update + 1
        stats = rs.stats
        metrics.update(
            env_steps=n_upd * cfg.steps_per_update,
            episode_return=jnp.where(
                stats.episodes > 0, stats.return_sum / jnp.maximum(stats.episodes, 1), jnp.nan
            ),
            episode_length=stats.length_sum / jnp.maximum(stats.episodes, 1),
            episodes=stats.episodes,
            step_reward=jnp.mean(traj.reward),
        )
        return RunnerState(train_state, rs, key, n_upd), metrics

    def train(key: PRNGKey) -> TrainOutput:
        runner = init(key)
        runner, metrics = jax.lax.scan(lambda r, _: step(r), runner, None, length=num_updates)
        return TrainOutput(runner, metrics)

    return Trainer(init, step, train, num_updates, ac, mapping, cfg)
