"""Recurrent utilities for Q-learning: acting with a carry, replaying stored sequences.

Each env's rollout ``[T]`` is stored as one :class:`SequenceItem` with the carry its first
step was acted from (R2D2's stored-state replay). A gradient step replays the sequences from
those carries through the online and the target networks over ``T + 1`` steps (the rollout
and the observation after it), restarting the carry where an episode starts, and applies the
feed-forward TD loss (:func:`~jmarl.algos.qlearning.losses.td_loss`) to the ``T`` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.algos.base import ActOutput, Transition
from jmarl.algos.qlearning.losses import td_loss
from jmarl.algos.qlearning.networks import QNetworks, QParams
from jmarl.algos.replay import ReplayItem
from jmarl.env import spaces
from jmarl.env.base import EnvSpec, TimeStep
from jmarl.types import Array, Params, PRNGKey, PyTree


class SequenceItem(NamedTuple):
    """One env's rollout of ``T`` steps (leaves ``[..., T(+1), N, ...]``).

    ``obs``, ``state``, ``alive``, ``action_mask``, ``reset`` have ``T + 1`` steps (the
    rollout's and the step after it); ``action``, ``reward``, ``discount`` ``T``; ``h0``
    ``f32[N, H]`` the carry the first step was acted from. ``reset`` ``bool[T + 1, N]``: the
    step starts an episode (the carry restarts from zeros).
    """

    obs: PyTree
    state: Array
    alive: Array
    action_mask: Array
    reset: Array
    action: Array
    reward: Array
    discount: Array
    h0: Array


def rollout_sequences(traj: Transition, last_ts: TimeStep, num_actions: int) -> SequenceItem:
    """A rollout ``[T, E]`` (acted by :func:`make_recurrent_act`) and the timestep after it as
    ``E`` :class:`SequenceItem` s (leading axis ``E``)."""

    def extend(x: Array, last: Array) -> Array:
        return jnp.concatenate([x, last[None]], axis=0)

    def mask(m: Array | None, like: Array) -> Array:
        shape = (*like.shape, num_actions)
        return jnp.ones(shape, bool) if m is None else jnp.broadcast_to(m, shape)

    last_reset = jnp.broadcast_to(last_ts.done[:, None], last_ts.alive.shape)
    fields = (
        jax.tree.map(extend, traj.obs, last_ts.obs),
        extend(traj.state, last_ts.state).astype(jnp.float32),
        extend(traj.alive, last_ts.alive),
        extend(mask(traj.action_mask, traj.alive), mask(last_ts.action_mask, last_ts.alive)),
        extend(traj.extras["reset"], last_reset),
        traj.action.astype(jnp.int32),
        traj.reward,
        traj.discount,
    )
    obs, state, alive, mask_, reset, action, reward, discount = jax.tree.map(
        lambda x: jnp.swapaxes(x, 0, 1), fields
    )
    h0 = traj.extras["carry"][0]
    return SequenceItem(obs, state, alive, mask_, reset, action, reward, discount, h0)


def unroll(nets: QNetworks, params: tuple[Params, ...], seqs: SequenceItem) -> Array:
    """Utilities ``f32[B, T + 1, N, A]`` of sequences ``[B]`` replayed from their ``h0``."""
    step = jax.vmap(nets.q_step, in_axes=(None, 0, 0, 0))

    def one(h: Array, x: tuple[PyTree, Array]) -> tuple[Array, Array]:
        obs, reset = x
        return step(params, h, obs, reset)

    time_major = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), (seqs.obs, seqs.reset))
    _, q = jax.lax.scan(one, seqs.h0, time_major)
    return jnp.swapaxes(q, 0, 1)


def recurrent_q_loss(
    params: QParams,
    target: QParams,
    seqs: SequenceItem,
    nets: QNetworks,
    gamma: float,
    double_q: bool,
) -> tuple[Array, dict[str, Array]]:
    """:func:`~jmarl.algos.qlearning.losses.td_loss` over every step of sequences ``[B]``."""
    q = unroll(nets, params.agents, seqs)
    q_target = unroll(nets, target.agents, seqs)
    flat = lambda x: x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
    now, nxt = (lambda x: flat(x[:, :-1])), (lambda x: flat(x[:, 1:]))
    batch = ReplayItem(
        obs=None,
        state=now(seqs.state),
        action=flat(seqs.action),
        reward=flat(seqs.reward),
        discount=flat(seqs.discount),
        alive=now(seqs.alive),
        action_mask=now(seqs.action_mask),
        next_obs=None,
        next_state=nxt(seqs.state),
        next_alive=nxt(seqs.alive),
        next_mask=nxt(seqs.action_mask),
    )
    mixers = (params.mixer, target.mixer)
    return td_loss(now(q), nxt(q), nxt(q_target), mixers, batch, nets, gamma, double_q)


def make_recurrent_act(nets: QNetworks, explore: Callable[..., Array]) -> Callable[..., ActOutput]:
    """``act(acting, ts [E], key, carry [E, N, H], deterministic=False)``: the carry restarts
    in envs whose ``ts.done``; extras ``carry`` (the carry the step started from) and
    ``reset`` ``bool[E, N]`` for :func:`rollout_sequences`. ``explore(q, mask, key, acting,
    deterministic) -> actions`` picks the actions."""
    step = jax.vmap(nets.q_step, in_axes=(None, 0, 0, 0))

    def act(
        acting: NamedTuple, ts: TimeStep, key: PRNGKey, carry: Array, deterministic: bool = False
    ) -> ActOutput:
        reset = jnp.broadcast_to(ts.done[:, None], ts.alive.shape)
        h, q = step(acting.q, carry, ts.obs, reset)  # type: ignore[attr-defined]
        mask = jnp.ones(q.shape, bool) if ts.action_mask is None else ts.action_mask
        action = explore(q, mask, key, acting, deterministic)
        return ActOutput(action, {"carry": carry, "reset": reset}, h)

    return act


def make_init_carry(size: int, num_agents: int) -> Callable[[int], Array]:
    """``init_carry(E)``: zeros ``f32[E, N, H]``."""
    return lambda num_envs: jnp.zeros((num_envs, num_agents, size), jnp.float32)


def example_sequence(spec: EnvSpec, length: int, num_actions: int, gru_size: int) -> SequenceItem:
    """One :class:`SequenceItem` of zeros for ``length``-step rollouts of ``spec`` (to size a
    buffer)."""
    n = spec.num_agents
    steps = jnp.zeros((length, n), jnp.float32)
    flags = jnp.zeros((length + 1, n), bool)
    return SequenceItem(
        obs=spaces.zeros(spec.observation_space, (length + 1, n)),
        state=jnp.zeros((length + 1, *spec.state_space.shape), jnp.float32),
        alive=flags,
        action_mask=jnp.zeros((length + 1, n, num_actions), bool),
        reset=flags,
        action=steps.astype(jnp.int32),
        reward=steps,
        discount=steps,
        h0=jnp.zeros((n, gru_size), jnp.float32),
    )
