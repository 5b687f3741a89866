"""IPPO / MAPPO on the algorithm contract: ``make(env, cfg, total_steps, mapping) -> Trainer``.

>>> import jax, jmarl
>>> env = jmarl.make("simple_spread", num_agents=2, max_steps=5)
>>> cfg = jmarl.PPOConfig(num_envs=2, rollout_length=5, num_minibatches=1, num_epochs=1)
>>> trainer = jmarl.make_ppo(env, cfg, total_steps=20)
>>> out = jax.jit(trainer.train)(jax.random.key(0))
>>> out.metrics["update"].tolist()  # env steps: update * trainer.steps_per_update
[1, 2]

``jax.jit(jax.vmap(trainer.train))(keys)`` trains one seed per key in one program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from jmarl.agents.sharing import PolicyMapping, make_policy_mapping
from jmarl.algos.auxiliary import AuxiliaryFactory, build_auxiliaries, init_auxiliaries
from jmarl.algos.base import ActOutput, Carry, Metrics, Trainer, Transition
from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams, PPOCarry, make_actor_critic
from jmarl.algos.ppo.update import TrainState, make_optimizer, make_update
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.env.base import Env, TimeStep
from jmarl.types import Array, PRNGKey, PyTree


def make_act(ac: ActorCritic) -> Callable[..., ActOutput]:
    """``act(params, ts [E], key, carry, deterministic=False) -> ActOutput``: actions sampled
    from (or, when ``deterministic``, the modes of) the masked action distributions, with their
    log-probabilities and the critic's values as extras.

    Recurrent (``ac.gru_size``): ``carry`` is a :class:`PPOCarry` ``[E, N, H]``, restarted
    from zeros in envs whose ``ts.done`` (their obs begins a new episode); the extras also
    hold the carry the step started from (``carry``) and the restart flags (``reset``
    ``bool[E, N]``), from which the update replays whole sequences.
    """
    if ac.gru_size is not None:
        return _make_recurrent_act(ac)
    policy = functools.partial(ac.policy, batch_dims=1)
    value = functools.partial(ac.value, batch_dims=1)

    def act(
        params: ActorCriticParams,
        ts: TimeStep,
        key: PRNGKey,
        carry: Carry,
        deterministic: bool = False,
    ) -> ActOutput:
        action, log_prob = _sample(ac, policy(params.actor, ts.obs), ts, key, deterministic)
        extras = {"log_prob": log_prob, "value": value(params.critic, ts.obs, ts.state)}
        return ActOutput(action, extras, carry)

    return act


def _sample(
    ac: ActorCritic, dist_params: Array, ts: TimeStep, key: PRNGKey, deterministic: bool
) -> tuple[PyTree, Array]:
    """Action (sampled, or the mode) and its log-probability under the masked distribution."""
    dist = ac.distribution
    if deterministic:
        action = dist.mode(dist_params, ts.action_mask)
    else:
        action = dist.sample(key, dist_params, ts.action_mask)
    return action, dist.log_prob(dist_params, action, ts.action_mask)


def _make_recurrent_act(ac: ActorCritic) -> Callable[..., ActOutput]:
    policy = jax.vmap(ac.policy_step, in_axes=(None, 0, 0, 0))
    value = jax.vmap(ac.value_step, in_axes=(None, 0, 0, 0, 0))

    def act(
        params: ActorCriticParams,
        ts: TimeStep,
        key: PRNGKey,
        carry: PPOCarry,
        deterministic: bool = False,
    ) -> ActOutput:
        reset = jnp.broadcast_to(ts.done[:, None], ts.alive.shape)
        h_actor, dist_params = policy(params.actor, carry.actor, ts.obs, reset)
        h_critic, values = value(params.critic, carry.critic, ts.obs, ts.state, reset)
        action, log_prob = _sample(ac, dist_params, ts, key, deterministic)
        extras = {"log_prob": log_prob, "value": values, "carry": carry, "reset": reset}
        return ActOutput(action, extras, PPOCarry(h_actor, h_critic))

    return act


def make_init_carry(ac: ActorCritic, num_agents: int) -> Callable[[int], Carry]:
    """``init_carry(num_envs)``: zeros ``[E, N, H]`` (recurrent) or ``()``."""
    if ac.gru_size is None:
        return no_carry
    size = ac.gru_size

    def init_carry(num_envs: int) -> PPOCarry:
        zeros = jnp.zeros((num_envs, num_agents, size), jnp.float32)
        return PPOCarry(zeros, zeros)

    return init_carry


def make_last_value(ac: ActorCritic) -> Callable[[ActorCriticParams, Transition, TimeStep], Array]:
    """``last_value(params, traj [T, E], last_ts [E]) -> V(s_T)`` ``[E, N]`` for GAE.

    Recurrent: the critic's carry after the rollout is one more step from the last stored
    carry, so no carry is passed between ``act`` and ``learn``.
    """
    if ac.gru_size is None:
        return lambda params, traj, last_ts: ac.value(
            params.critic, last_ts.obs, last_ts.state, batch_dims=1
        )
    step = jax.vmap(ac.value_step, in_axes=(None, 0, 0, 0, 0))

    def last_value(params: ActorCriticParams, traj: Transition, last_ts: TimeStep) -> Array:
        at_end = jax.tree.map(lambda x: x[-1], (traj.obs, traj.state, traj.extras))
        obs, state, extras = at_end
        h, _ = step(params.critic, extras["carry"].critic, obs, state, extras["reset"])
        reset = jnp.broadcast_to(last_ts.done[:, None], last_ts.alive.shape)
        _, values = step(params.critic, h, last_ts.obs, last_ts.state, reset)
        return values

    return last_value


def make(
    env: Env,
    cfg: PPOConfig,
    total_steps: int,
    mapping: PolicyMapping,
    auxiliaries: Sequence[AuxiliaryFactory] = (),
) -> Trainer:
    """Builds IPPO (``cfg.centralized_critic=False``) or MAPPO training for ``env``.

    :param total_steps: env steps (per seed) to train for; rounded down to whole updates.
    :param mapping: the agent -> policy mapping (:func:`jmarl.make_policy_mapping`).
    :param auxiliaries: auxiliary losses (:mod:`jmarl.algos.auxiliary`) trained beside actor
        and critic; their parameters live in ``params.aux``.
    """
    ac = make_actor_critic(env.spec, mapping, cfg)
    aux = build_auxiliaries(auxiliaries, env.spec, mapping)
    num_updates = num_updates_for(cfg.steps_per_update, total_steps)
    optimizer = make_optimizer(cfg, num_updates, aux)
    update = make_update(ac, optimizer, cfg, mapping, aux, env.spec.turn_based)
    last_value_fn = make_last_value(ac)

    def init_learner(key: PRNGKey) -> TrainState:
        params = ac.init(key)._replace(aux=init_auxiliaries(aux, jax.random.fold_in(key, 1)))
        trainable = jnp.ones((len(mapping.policy_ids),), bool)
        return TrainState(params, optimizer.init(params), trainable)

    def learn(
        state: TrainState, traj: Transition, last_ts: TimeStep, key: PRNGKey
    ) -> tuple[TrainState, Metrics]:
        return update(state, traj, last_value_fn(state.params, traj, last_ts), key)

    return make_trainer(
        env,
        init_learner=init_learner,
        act=make_act(ac),
        learn=learn,
        acting_params=lambda state: state.params,
        init_carry=make_init_carry(ac, env.spec.num_agents),
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
