"""IPPO / MAPPO on the algorithm contract: ``make(env, cfg, total_steps, mapping) -> Trainer``.

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

import jax
import jax.numpy as jnp

from jmarl.agents.sharing import PolicyMapping, make_policy_mapping
from jmarl.algos.base import ActOutput, Carry, Metrics, Trainer, Transition
from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams, make_actor_critic
from jmarl.algos.ppo.update import TrainState, make_optimizer, make_update
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.env.base import Env, TimeStep
from jmarl.types import PRNGKey


def make_act(ac: ActorCritic) -> Callable[..., ActOutput]:
    """``act(params, ts [E], key, carry, deterministic=False) -> ActOutput``: actions sampled
    from (or, when ``deterministic``, the modes of) the masked action distributions, with their
    log-probabilities and the critic's values as extras."""
    policy = jax.vmap(ac.policy, in_axes=(None, 0))
    value = jax.vmap(ac.value, in_axes=(None, 0, 0))
    dist = ac.distribution

    def act(
        params: ActorCriticParams,
        ts: TimeStep,
        key: PRNGKey,
        carry: Carry,
        deterministic: bool = False,
    ) -> ActOutput:
        dist_params = policy(params.actor, ts.obs)
        if deterministic:
            action = dist.mode(dist_params, ts.action_mask)
        else:
            action = dist.sample(key, dist_params, ts.action_mask)
        log_prob = dist.log_prob(dist_params, action, ts.action_mask)
        extras = {"log_prob": log_prob, "value": value(params.critic, ts.obs, ts.state)}
        return ActOutput(action, extras, carry)

    return act


def make(env: Env, cfg: PPOConfig, total_steps: int, mapping: PolicyMapping) -> Trainer:
    """Builds IPPO (``cfg.centralized_critic=False``) or MAPPO training for ``env``.

    :param total_steps: env steps (per seed) to train for; rounded down to whole updates.
    :param mapping: the agent -> policy mapping (:func:`jmarl.make_policy_mapping`).
    """
    ac = make_actor_critic(env.spec, mapping, cfg)
    num_updates = num_updates_for(cfg.steps_per_update, total_steps)
    optimizer = make_optimizer(cfg, num_updates)
    update = make_update(ac, optimizer, cfg, mapping)
    last_value_fn = jax.vmap(ac.value, in_axes=(None, 0, 0))

    def init_learner(key: PRNGKey) -> TrainState:
        params = ac.init(key)
        trainable = jnp.ones((len(mapping.policy_ids),), bool)
        return TrainState(params, optimizer.init(params), trainable)

    def learn(
        state: TrainState, traj: Transition, last_ts: TimeStep, key: PRNGKey
    ) -> tuple[TrainState, Metrics]:
        last_value = last_value_fn(state.params.critic, last_ts.obs, last_ts.state)
        return update(state, traj, last_value, key)

    return make_trainer(
        env,
        init_learner=init_learner,
        act=make_act(ac),
        learn=learn,
        acting_params=lambda state: state.params,
        init_carry=no_carry,
        num_envs=cfg.num_envs,
        rollout_length=cfg.rollout_length,
        num_updates=num_updates,
        mapping=mapping,
        config=cfg,
    )


def make_ppo(
    env: Env,
    cfg: PPOConfig,
    total_steps: int,
    sharing: str = "shared",
    agent_groups: Mapping[str, Sequence[str]] | None = None,
    policy_mapping_fn: Callable[[str], str] | None = None,
) -> Trainer:
    """:func:`make` with the mapping built from ``sharing`` (see :mod:`jmarl.agents.sharing`).

    ``cfg.centralized_critic`` decides IPPO (False) or MAPPO (True).
    """
    mapping = make_policy_mapping(env.spec, sharing, agent_groups, policy_mapping_fn)
    return make(env, cfg, total_steps, mapping)
