"""Multi-step returns and advantages on time-major arrays.

Every function takes a trajectory laid out as ``[T, ...]``: time first, then any number of
batch dimensions (for example ``[T, E, N]``: time, environments, agents). The batch
dimensions are carried through unchanged, so callers need not ``vmap``.

Conventions (subscripts are time indices):

* ``rewards[t]`` is ``r_t``, the reward received on the transition out of step ``t``.
* ``discounts[t]`` is ``d_t = gamma * (1 - done_t)``: the weight of what follows step ``t``.
  A zero discount ends the episode, so nothing after ``t`` leaks into step ``t``.
* ``values`` has one more step than ``rewards``: ``values[t]`` is ``V(s_t)`` for
  ``t = 0..T``, and ``values[T]`` bootstraps the tail of the trajectory.

The outputs are learning targets, so the value inputs are wrapped in
``jax.lax.stop_gradient``: differentiating a loss built on an advantage or return never
pushes gradient into the critic through its own target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmarl.types import Array


def _check_shapes(rewards: Array, discounts: Array, values: Array | None = None) -> None:
    """Raises ``ValueError`` unless the arrays follow the ``[T, ...]`` / ``[T + 1, ...]`` layout."""
    if rewards.ndim < 1:
        raise ValueError(f"rewards must have a leading time axis, got shape {rewards.shape}")
    if rewards.shape != discounts.shape:
        raise ValueError(
            f"rewards {rewards.shape} and discounts {discounts.shape} must have the same shape"
        )
    if values is not None:
        expected = (rewards.shape[0] + 1, *rewards.shape[1:])
        if values.shape != expected:
            raise ValueError(
                f"values must have shape [T + 1, ...] = {expected} for rewards "
                f"{rewards.shape}, got {values.shape}"
            )


def td_errors(rewards: Array, discounts: Array, values: Array) -> Array:
    """One-step temporal-difference errors.

    ``delta_t = r_t + d_t * V(s_{t+1}) - V(s_t)``  (Sutton & Barto, 2018, eq. 6.5).

    :param rewards: ``[T, ...]`` rewards ``r_t``.
    :param discounts: ``[T, ...]`` discounts ``d_t = gamma * (1 - done_t)``.
    :param values: ``[T + 1, ...]`` state values; the last row bootstraps. Gradients are
        stopped.
    :returns: ``[T, ...]`` TD errors.
    """
    rewards, discounts, values = jnp.asarray(rewards), jnp.asarray(discounts), jnp.asarray(values)
    _check_shapes(rewards, discounts, values)
    values = jax.lax.stop_gradient(values)
    return rewards + discounts * values[1:] - values[:-1]


def gae_advantages(rewards: Array, discounts: Array, values: Array, lambda_: float) -> Array:
    """Generalized advantage estimates, computed by a reverse scan over time.

    With ``delta_t = r_t + d_t * V(s_{t+1}) - V(s_t)`` the estimate obeys::

        A_{T-1} = delta_{T-1}
        A_t     = delta_t + d_t * lambda * A_{t+1}

    (Schulman et al., 2016, "High-Dimensional Continuous Control Using Generalized Advantage
    Estimation", eq. 16, with ``gamma`` folded into ``d_t``). ``lambda = 0`` gives the TD
    errors; ``lambda = 1`` gives the discounted return (bootstrapped with ``V(s_T)``) minus
    ``V(s_t)``. A zero discount at an episode end stops the recursion there.

    :param rewards: ``[T, ...]`` rewards ``r_t``.
    :param discounts: ``[T, ...]`` discounts ``d_t = gamma * (1 - done_t)``.
    :param values: ``[T + 1, ...]`` state values; the last row bootstraps. Gradients are
        stopped, so the result is a constant with respect to the critic.
    :param lambda_: the trace parameter in ``[0, 1]``: lower trusts the critic more (less
        variance, more bias).
    :returns: ``[T, ...]`` advantages.
    """
    deltas = td_errors(rewards, discounts, values)
    decay = jnp.asarray(discounts, deltas.dtype) * jnp.asarray(lambda_, deltas.dtype)

    def step(next_adv: Array, inputs: tuple[Array, Array]) -> tuple[Array, Array]:
        delta_t, decay_t = inputs
        adv_t = delta_t + decay_t * next_adv
        return adv_t, adv_t

    _, advantages = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, decay), reverse=True)
    return advantages


def lambda_returns(rewards: Array, discounts: Array, values: Array, lambda_: float) -> Array:
    """TD(lambda) return targets for the critic: ``G^lambda_t = A_t + V(s_t)``.

    Equivalently ``G_t = r_t + d_t * ((1 - lambda) * V(s_{t+1}) + lambda * G_{t+1})``
    with ``G_T = V(s_T)`` (Sutton & Barto, 2018, sec. 12.1). Arguments as for
    :func:`gae_advantages`; gradients through ``values`` are stopped.

    :returns: ``[T, ...]`` return targets.
    """
    advantages = gae_advantages(rewards, discounts, values, lambda_)
    return advantages + jax.lax.stop_gradient(jnp.asarray(values))[:-1]


def discounted_returns(rewards: Array, discounts: Array, bootstrap: Array) -> Array:
    """Discounted returns ``G_t = r_t + d_t * G_{t+1}`` with ``G_T = bootstrap``.

    The Monte-Carlo return when ``bootstrap`` is zero (or the last discount is zero); mainly a
    reference for tests and for consistency checks of :func:`gae_advantages`.

    :param rewards: ``[T, ...]`` rewards ``r_t``.
    :param discounts: ``[T, ...]`` discounts ``d_t = gamma * (1 - done_t)``.
    :param bootstrap: ``[...]`` value of the state after the last step (broadcast to the
        batch shape). Gradients are stopped.
    :returns: ``[T, ...]`` returns.
    """
    rewards, discounts = jnp.asarray(rewards), jnp.asarray(discounts)
    _check_shapes(rewards, discounts)
    dtype = jnp.result_type(rewards, discounts, bootstrap)
    tail = jnp.broadcast_to(jax.lax.stop_gradient(jnp.asarray(bootstrap, dtype)), rewards.shape[1:])

    def step(next_return: Array, inputs: tuple[Array, Array]) -> tuple[Array, Array]:
        r_t, d_t = inputs
        g_t = r_t + d_t * next_return
        return g_t, g_t

    xs = (rewards.astype(dtype), discounts.astype(dtype))
    _, returns = jax.lax.scan(step, tail, xs, reverse=True)
    return returns


__all__ = ["discounted_returns", "gae_advantages", "lambda_returns", "td_errors"]
