"""One MADDPG update: store a rollout, then gradient steps — a critic step on the TD target of
the target actors and critics, an actor step through the critic — and Polyak target updates.

Critic of agent ``i`` (its own reward and discount, rows where it is alive)::

    y_i = r_i + gamma * d_i * Q_i^target(s', o'_i, mu^target(o'_1), ..., mu^target(o'_N))

Actor of agent ``i`` maximises ``Q_i(s, o_i, a_1, .., mu_i(o_i), .., a_N)``: only agent
``i``'s action is the actor's (differentiable), the others' are the stored ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jmarl.agents.sharing import PolicyMapping, block_flags, where_block_trees, where_blocks
from jmarl.algos.base import Metrics, Transition
from jmarl.algos.maddpg.config import MADDPGConfig
from jmarl.algos.maddpg.networks import MADDPGNetworks
from jmarl.algos.replay import (
    ReplayItem,
    ReplayState,
    add,
    gradient_steps,
    rollout_items,
    sample,
)
from jmarl.critics.central_q import joint_action_features
from jmarl.env.base import TimeStep
from jmarl.ops.losses import masked_mean
from jmarl.types import Array, Params, PRNGKey


class MADDPGActing(NamedTuple):
    """What ``act`` needs: the actors' parameters and the exploration noise ``f32[]``."""

    actor: tuple[Params, ...]
    noise: Array


class MADDPGState(NamedTuple):
    """The learner state: acting parameters, critics, target actors and critics, the two
    optimizer states, the replay buffer, the update counter and ``trainable`` ``bool[P]``
    (a policy whose flag is False keeps its actor, critic and their Adam moments
    bit-identical; its gradients stay out of the clipping norms)."""

    acting: MADDPGActing
    critic: tuple[Params, ...]
    target_actor: tuple[Params, ...]
    target_critic: tuple[Params, ...]
    actor_opt: Any
    critic_opt: Any
    replay: ReplayState
    updates: Array
    trainable: Array


def own_action_joint(mine: Array, stored: Array) -> Array:
    """``[B, N, N * K]``: row ``i`` is the joint action with agent ``i``'s features from
    ``mine`` ``[B, N, K]`` and every other agent's from ``stored`` ``[B, N, K]``."""
    n = mine.shape[-2]
    own = jnp.eye(n, dtype=bool)[None, :, :, None]  # [1, N(row i), N(agent j), 1]
    joint = jnp.where(own, mine[:, None], stored[:, None])
    return joint.reshape(*joint.shape[:2], -1)


def critic_loss(
    critic: tuple[Params, ...],
    state: MADDPGState,
    batch: ReplayItem,
    nets: MADDPGNetworks,
    gamma: float,
) -> tuple[Array, Array]:
    """The TD loss of the module doc and the mean ``Q_i`` of the taken actions."""
    codec = nets.codec
    next_out = nets.actor(state.target_actor, batch.next_obs, batch_dims=1)
    next_joint = joint_action_features(codec.greedy(next_out, batch.next_mask))
    q_next = nets.q(state.target_critic, batch.next_obs, batch.next_state, next_joint, batch_dims=1)
    y = jax.lax.stop_gradient(batch.reward + gamma * batch.discount * q_next)
    joint = joint_action_features(codec.features(batch.action))
    q = nets.q(critic, batch.obs, batch.state, joint, batch_dims=1)
    return masked_mean(jnp.square(q - y), batch.alive), masked_mean(q, batch.alive)


def actor_loss(
    actor: tuple[Params, ...],
    critic: tuple[Params, ...],
    batch: ReplayItem,
    key: PRNGKey,
    nets: MADDPGNetworks,
    action_reg: float,
) -> Array:
    """``-mean_i Q_i(.., mu_i(o_i), ..)`` over alive rows plus the pre-activation penalty."""
    out = nets.actor(actor, batch.obs, batch_dims=1)
    mine = nets.codec.relaxed(out, key, batch.action_mask)
    joint = own_action_joint(mine, nets.codec.features(batch.action))
    q = nets.q(critic, batch.obs, batch.state, joint, batch_dims=1)
    return -masked_mean(q, batch.alive) + action_reg * jnp.mean(jnp.square(out))


def frozen_out(flags: tuple[Array, ...], grads: tuple[Params, ...]) -> tuple[Params, ...]:
    """``grads`` with the frozen blocks' zeroed (they stay out of the clipping norm)."""
    return where_blocks(flags, grads, jax.tree.map(jnp.zeros_like, grads))


Learn = Callable[[MADDPGState, Transition, TimeStep, PRNGKey], tuple[MADDPGState, Metrics]]


def make_learn(
    nets: MADDPGNetworks,
    optimizers: tuple[optax.GradientTransformation, optax.GradientTransformation],
    cfg: MADDPGConfig,
    mapping: PolicyMapping,
    noise: optax.Schedule,
    start_update: int,
) -> Learn:
    """``learn(state, traj [T, E], last_ts [E], key) -> (state, metrics)``: adds the rollout to
    the buffer; from update ``start_update`` on, ``cfg.num_epochs`` gradient steps."""
    actor_opt, critic_opt = optimizers

    def grad_step(state: MADDPGState, key: PRNGKey) -> tuple[MADDPGState, Metrics]:
        k_batch, k_relax = jax.random.split(key)
        batch = sample(state.replay, k_batch, cfg.batch_size)
        flags = block_flags(mapping, state.trainable)
        critic0 = state.critic
        (c_loss, q_mean), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic, state, batch, nets, cfg.gamma
        )
        c_updates, critic_opt_state = critic_opt.update(
            frozen_out(flags, c_grads), state.critic_opt, state.critic
        )
        critic_opt_state = where_block_trees(flags, critic_opt_state, state.critic_opt, critic0)
        critic = where_blocks(flags, optax.apply_updates(state.critic, c_updates), state.critic)
        actor = state.acting.actor
        a_loss, a_grads = jax.value_and_grad(actor_loss)(
            actor, critic, batch, k_relax, nets, cfg.action_reg
        )
        a_updates, actor_opt_state = actor_opt.update(
            frozen_out(flags, a_grads), state.actor_opt, actor
        )
        actor_opt_state = where_block_trees(flags, actor_opt_state, state.actor_opt, actor)
        actor = where_blocks(flags, optax.apply_updates(actor, a_updates), actor)
        new = state._replace(
            acting=state.acting._replace(actor=actor),
            critic=critic,
            target_actor=optax.incremental_update(actor, state.target_actor, cfg.tau),
            target_critic=optax.incremental_update(critic, state.target_critic, cfg.tau),
            actor_opt=actor_opt_state,
            critic_opt=critic_opt_state,
        )
        return new, {"loss": c_loss, "actor_loss": a_loss, "q_taken": q_mean}

    train = gradient_steps(grad_step, cfg.num_epochs, ("loss", "actor_loss", "q_taken"))

    def learn(
        state: MADDPGState, traj: Transition, last_ts: TimeStep, key: PRNGKey
    ) -> tuple[MADDPGState, Metrics]:
        items = rollout_items(traj, last_ts, nets.codec.param_size)
        state = state._replace(replay=add(state.replay, items))
        updates = state.updates + 1
        state, metrics = train(state, updates >= start_update, key)
        sigma = jnp.asarray(noise(updates), jnp.float32)
        state = state._replace(acting=state.acting._replace(noise=sigma), updates=updates)
        return state, {**metrics, "noise": sigma}

    return learn
