"""Reward credit in turn-based games: a reward that reaches an agent while it is not acting
belongs to that agent's last action.

jmarl envs report rewards at the step they happen, to every agent they reach: when the
winner of a turn-based game makes the last move, the loser's ``-1`` arrives on a step where
the loser is not ``alive`` (not acting), so an alive-masked loss would never see it. The rule
lives here, on the trajectory, rather than in the env: an env steps all agents in lockstep and
cannot rewrite a reward it has already returned, while the rollout ``[T, ...]`` holds every
agent's row of every step. It is the same rule as the PettingZoo bridge's AEC mode (each
agent's transition carries everything it received from its action to its next one).

Layout as in :mod:`jmarl.ops.returns`: time first, then any batch dimensions (e.g.
``[T, E, N]``). ``reward[t]`` is received on the transition out of step ``t``
(``Transition.reward``); ``discount[t]`` is 0 where the agent's episode ended on that
transition (``Transition.discount``, before any ``gamma``).

For an agent that acts at step ``t`` and next acts at ``t'`` (or the episode ends at step
``e < t'``), its credited transition is::

    reward'[t]    = reward[t] + reward[t+1] + ... + reward[min(t', e + 1) - 1]
    discount'[t]  = 0 if the episode ends before t' else 1
    next_step[t]  = t'   (the row whose observation is the agent's next state; T when the
                          next action lies beyond the trajectory, i.e. the bootstrap row)

Rewards inside the gap are summed undiscounted, as PettingZoo reports them (``gamma`` applies
per own action). Rows where the agent does not act get reward 0 (they enter no loss). A reward
that arrives before the agent's first action of the trajectory belongs to an action in an
earlier trajectory and is dropped; a transition whose next action lies beyond the trajectory
keeps the rewards seen so far and bootstraps from row ``T`` (the final timestep).

>>> import jax.numpy as jnp
>>> alive = jnp.array([[True, False], [False, True]])  # player 0 moves, then player 1 wins
>>> reward = jnp.array([[0.0, 0.0], [-1.0, 1.0]])
>>> discount = jnp.array([[1.0, 1.0], [0.0, 0.0]])
>>> credit = credit_to_last_action(reward, discount, alive)
>>> credit.reward.tolist(), credit.discount.tolist()
([[-1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]])
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.types import Array


class TurnCredit(NamedTuple):
    """Per-agent transitions from the rows where the agent acts (all ``[T, ...]``): credited
    ``reward`` (0 where it does not act), ``discount`` (1 where it does not act) and
    ``next_step`` ``i32`` (see the module doc)."""

    reward: Array
    discount: Array
    next_step: Array


def credit_to_last_action(reward: Array, discount: Array, alive: Array) -> TurnCredit:
    """Credits every reward to the receiving agent's last action (see the module doc).

    A reverse scan carries, for step ``t + 1``, what an action at ``t`` collects after its own
    step: nothing (and ``next_step = t + 1``) if the agent acts at ``t + 1``, else that step's
    reward plus, while the episode goes on, what follows it.

    :param reward: ``f32[T, ...]`` rewards as the env reported them.
    :param discount: ``[T, ...]`` 0 where the agent's episode ended on the transition, else 1.
    :param alive: ``bool[T, ...]`` the agent acted at this step.
    :returns: :class:`TurnCredit`, each ``[T, ...]``.
    """
    reward = jnp.asarray(reward, jnp.float32)
    discount = jnp.asarray(discount, jnp.float32)
    alive = jnp.asarray(alive, bool)
    if not reward.shape == discount.shape == alive.shape or reward.ndim < 1:
        raise ValueError(
            f"reward {reward.shape}, discount {discount.shape} and alive {alive.shape} must "
            "share one shape [T, ...]"
        )
    steps = jnp.broadcast_to(
        jnp.arange(reward.shape[0]).reshape((-1,) + (1,) * (reward.ndim - 1)), reward.shape
    )

    def body(
        after: tuple[Array, Array, Array], row: tuple[Array, Array, Array, Array]
    ) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array]]:
        r, d, acts, t = row
        gained, going_on, nxt = after  # what an action at t collects after step t
        own = (r + d * gained, d * going_on, jnp.where(d > 0, nxt, t + 1))
        # seen from step t - 1: nothing more if the agent acts at t, else what t collects
        acting = (jnp.zeros_like(r), jnp.ones_like(d), t)
        passed = jax.tree.map(lambda a, o: jnp.where(acts, a, o), acting, own)
        return passed, own

    last = jnp.full(reward.shape[1:], reward.shape[0], jnp.int32)
    init = (jnp.zeros(reward.shape[1:]), jnp.ones(reward.shape[1:]), last)
    _, (gained, going_on, nxt) = jax.lax.scan(
        body, init, (reward, discount, alive, steps), reverse=True
    )
    return TurnCredit(
        reward=jnp.where(alive, gained, 0.0),
        discount=jnp.where(alive, going_on, 1.0),
        next_step=nxt.astype(jnp.int32),
    )


def turn_gae_advantages(
    reward: Array, discount: Array, alive: Array, values: Array, gamma: float, lambda_: float
) -> Array:
    """GAE along each agent's own actions, with rewards credited by
    :func:`credit_to_last_action`: for an action at ``t`` whose agent next acts at ``t'``::

        delta_t = reward'[t] + gamma * discount'[t] * V[t'] - V[t]
        A_t     = delta_t + gamma * lambda * discount'[t] * A_{t'}

    (``V[T]``, ``A_T = 0`` past the trajectory). When every agent acts on every step this is
    :func:`jmarl.ops.returns.gae_advantages` with discounts ``gamma * discount``.

    :param reward: ``f32[T, ...]``; ``discount``: ``[T, ...]`` 0 where the agent's episode
        ended on the transition; ``alive``: ``bool[T, ...]`` the agent acted.
    :param values: ``[T + 1, ...]`` values of every row (gradients stopped); rows where the
        agent does not act are never read.
    :returns: ``f32[T, ...]`` advantages, 0 where the agent does not act.
    """
    credit = credit_to_last_action(reward, discount, alive)
    values = jax.lax.stop_gradient(jnp.asarray(values, jnp.float32))
    if values.shape != (reward.shape[0] + 1, *reward.shape[1:]):
        raise ValueError(f"values must have shape [T + 1, ...], got {values.shape}")

    def body(
        nxt: tuple[Array, Array], row: tuple[Array, Array, Array, Array]
    ) -> tuple[tuple[Array, Array], Array]:
        r, d, acts, v = row
        next_value, next_adv = nxt  # of the agent's next action (or the bootstrap row)
        delta = r + gamma * d * next_value - v
        adv = jnp.where(acts, delta + gamma * lambda_ * d * next_adv, 0.0)
        return (jnp.where(acts, v, next_value), jnp.where(acts, adv, next_adv)), adv

    init = (values[-1], jnp.zeros_like(values[-1]))
    rows = (credit.reward, credit.discount, jnp.asarray(alive, bool), values[:-1])
    _, adv = jax.lax.scan(body, init, rows, reverse=True)
    return adv
