"""Temporal-difference losses of multi-agent Q-learning on a batch of transitions ``[B]``.

With a mixer (VDN, QMIX) the team learns one value::

    y = r_team + gamma * d_team * Q_tot^target(s', Q^target(o', a*))
    loss = mean_b (Q_tot(s, Q(o, a)) - y)^2

where ``r_team`` is the mean of the agents' rewards, ``d_team`` is 1 while any agent's
episode goes on, and ``a*`` is each agent's greedy allowed next action (under the online
network for double Q-learning, else under the target). Utilities of agents that are not
alive enter the mixer as 0. Without a mixer every agent learns alone on its own reward and
discount (independent Q-learning), over the rows where it is alive.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmarl.algos.qlearning.networks import QNetworks, QParams
from jmarl.algos.replay import ReplayItem
from jmarl.nn.distributions import masked_logits
from jmarl.ops.losses import masked_mean
from jmarl.types import Array, Params


def greedy(q: Array, mask: Array) -> Array:
    """``i32[...]``: the allowed action of highest value in ``q`` ``[..., A]``."""
    return jnp.argmax(masked_logits(q, mask), axis=-1).astype(jnp.int32)


def chosen(q: Array, action: Array) -> Array:
    """``q[..., action]``: the value of each row's ``action``."""
    return jnp.take_along_axis(q, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def next_values(q_next_online: Array, q_next_target: Array, mask: Array, double_q: bool) -> Array:
    """``f32[..., N]``: the target network's value of the greedy next action (picked by the
    online network when ``double_q``, else by the target: ``max_a Q^target``)."""
    pick = q_next_online if double_q else q_next_target
    return chosen(q_next_target, greedy(pick, mask))


def team_target(reward: Array, discount: Array, next_total: Array, gamma: float) -> Array:
    """``f32[B]``: ``mean_i r_i + gamma * max_i d_i * next_total``."""
    return reward.mean(axis=-1) + gamma * discount.max(axis=-1) * next_total


def q_loss(
    params: QParams,
    target: QParams,
    batch: ReplayItem,
    nets: QNetworks,
    gamma: float,
    double_q: bool,
) -> tuple[Array, dict[str, Array]]:
    """The TD loss of the module doc on ``batch`` ``[B]`` for feed-forward utilities."""
    q = nets.q_values(params.agents, batch.obs, batch_dims=1)
    q_next_target = nets.q_values(target.agents, batch.next_obs, batch_dims=1)
    q_next_online = (
        nets.q_values(params.agents, batch.next_obs, batch_dims=1) if double_q else q_next_target
    )
    mixers = (params.mixer, target.mixer)
    return td_loss(q, q_next_online, q_next_target, mixers, batch, nets, gamma, double_q)


def td_loss(
    q: Array,
    q_next_online: Array,
    q_next_target: Array,
    mixers: tuple[Params, Params],
    batch: ReplayItem,
    nets: QNetworks,
    gamma: float,
    double_q: bool,
) -> tuple[Array, dict[str, Array]]:
    """The TD loss of the module doc from utilities ``[B, N, A]`` of the batch's steps and of
    their next steps (online and target networks), with the online and target mixer
    parameters ``mixers``; metrics ``q_taken`` (mean value of the taken actions, ``Q_tot``
    with a mixer) and ``td_abs``."""
    q_taken = chosen(q, batch.action)
    q_next = jax.lax.stop_gradient(
        next_values(q_next_online, q_next_target, batch.next_mask, double_q)
    )
    if nets.mix is None:
        y = batch.reward + gamma * batch.discount * q_next
        td = q_taken - y
        loss = masked_mean(jnp.square(td), batch.alive)
        return loss, {
            "q_taken": masked_mean(q_taken, batch.alive),
            "td_abs": masked_mean(jnp.abs(td), batch.alive),
        }
    total = nets.mix(mixers[0], q_taken * batch.alive, batch.state, batch_dims=1)
    next_total = nets.mix(mixers[1], q_next * batch.next_alive, batch.next_state, batch_dims=1)
    y = jax.lax.stop_gradient(team_target(batch.reward, batch.discount, next_total, gamma))
    td = total - y
    return jnp.mean(jnp.square(td)), {"q_taken": total.mean(), "td_abs": jnp.abs(td).mean()}
