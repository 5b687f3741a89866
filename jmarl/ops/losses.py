"""Masked policy-gradient losses.

Every function takes a ``mask`` of the same shape as its data (``[T, E, N]`` or any other
layout; it is broadcast if it has fewer dimensions). Non-zero entries count, with their value
as a weight; zero entries are padding or dead agents and are ignored: they change neither the
result nor the gradient, even when the data there is ``inf`` or ``nan``. A mask of ``None``
counts every entry.

Averages divide by the mask's sum, or by 1 when the mask is all zero, so an empty batch gives
a loss of 0 instead of ``nan``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmarl.types import Array


def _weights(mask: Array | None, shape: tuple[int, ...]) -> tuple[Array, Array]:
    """The mask broadcast to ``shape``, as a boolean "counts" array and float weights."""
    if mask is None:
        return jnp.ones(shape, bool), jnp.ones(shape, jnp.float32)
    mask = jnp.broadcast_to(jnp.asarray(mask), shape)
    return mask != 0, mask.astype(jnp.float32)


def masked_mean(x: Array, mask: Array | None = None) -> Array:
    """Weighted mean ``sum(mask * x) / sum(mask)`` over all entries of ``x``.

    :param x: ``[...]`` values; entries where ``mask`` is zero may hold anything, ``nan``
        included.
    :param mask: ``[...]`` bool or float weights, broadcastable to ``x``; ``None`` means all.
    :returns: scalar; 0 when the mask is all zero.
    """
    x = jnp.asarray(x)
    keep, weights = _weights(mask, x.shape)
    total = jnp.sum(jnp.where(keep, x * weights.astype(x.dtype), 0))
    count = jnp.sum(weights)
    return total / jnp.where(count > 0, count, 1.0).astype(total.dtype)


def normalize_advantages(advantages: Array, mask: Array | None = None, eps: float = 1e-8) -> Array:
    """Shifts and scales advantages to zero mean and unit standard deviation over the mask.

    ``(A - mean) / (std + eps)`` with the masked mean and the masked population standard
    deviation. Masked entries are set to 0 so that padding cannot leak ``nan`` downstream.

    :param advantages: ``[...]`` advantages.
    :param mask: ``[...]`` bool or float weights; ``None`` means all.
    :param eps: added to the standard deviation; guards batches with (near) equal advantages.
    :returns: ``[...]`` normalized advantages.
    """
    advantages = jnp.asarray(advantages)
    keep, _ = _weights(mask, advantages.shape)
    safe = jnp.where(keep, advantages, 0)
    mean = masked_mean(safe, mask)
    std = jnp.sqrt(masked_mean(jnp.square(safe - mean), mask))
    return jnp.where(keep, (safe - mean) / (std + eps), 0)


def ppo_policy_loss(
    log_prob: Array,
    old_log_prob: Array,
    advantages: Array,
    clip_eps: float,
    mask: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
    """PPO's clipped surrogate objective, negated into a loss to minimise.

    With ``rho = exp(log_prob - old_log_prob)``::

        loss = -mean_mask( min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) )

    (Schulman et al., 2017, "Proximal Policy Optimization Algorithms", eq. 7). Gradients flow
    only into ``log_prob``: ``old_log_prob`` and ``advantages`` are treated as constants.

    :param log_prob: ``[...]`` log-probabilities of the taken actions under the current policy.
    :param old_log_prob: ``[...]`` the same under the policy that collected the data.
    :param advantages: ``[...]`` advantage estimates (usually normalized).
    :param clip_eps: half-width of the trust region on ``rho``; smaller is more conservative.
    :param mask: ``[...]`` bool or float weights; ``None`` means all.
    :returns: the scalar loss and metrics: ``approx_kl``, the masked mean of
        ``(rho - 1) - log(rho)`` (an unbiased, non-negative estimate of KL(old || new)),
        and ``clip_fraction``, the weighted share of entries with ``|rho - 1| > clip_eps``.
    """
    log_prob = jnp.asarray(log_prob)
    keep, _ = _weights(mask, log_prob.shape)
    old_log_prob = jax.lax.stop_gradient(old_log_prob)
    advantages = jax.lax.stop_gradient(advantages)
    # Zero out masked entries before exp, so garbage there cannot make inf * 0 = nan gradients.
    log_ratio = jnp.where(keep, log_prob - old_log_prob, 0.0)
    advantages = jnp.where(keep, advantages, 0.0)
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -masked_mean(jnp.minimum(unclipped, clipped), mask)

    ratio_sg, log_ratio_sg = jax.lax.stop_gradient(ratio), jax.lax.stop_gradient(log_ratio)
    metrics = {
        "approx_kl": masked_mean((ratio_sg - 1.0) - log_ratio_sg, mask),
        "clip_fraction": masked_mean(
            (jnp.abs(ratio_sg - 1.0) > clip_eps).astype(ratio.dtype), mask
        ),
    }
    return loss, metrics


def ppo_value_loss(
    values: Array,
    old_values: Array,
    targets: Array,
    clip_eps: float | None,
    mask: Array | None = None,
) -> Array:
    """Critic regression loss, optionally with PPO-style value clipping.

    With ``v_clip = old_values + clip(values - old_values, -eps, eps)``::

        loss = 0.5 * mean_mask( max((values - targets)^2, (v_clip - targets)^2) )

    The clipped term keeps the new value within ``eps`` of the old one unless that moves it
    closer to the target (as in OpenAI Baselines' PPO2). Gradients flow only into ``values``.

    :param values: ``[...]`` current critic predictions.
    :param old_values: ``[...]`` predictions of the critic that collected the data.
    :param targets: ``[...]`` return targets, e.g. :func:`jmarl.ops.lambda_returns`.
    :param clip_eps: clipping range; ``None`` or a Python number ``<= 0`` disables clipping
        (a traced value always clips).
    :param mask: ``[...]`` bool or float weights; ``None`` means all.
    :returns: scalar loss.
    """
    values = jnp.asarray(values)
    keep, _ = _weights(mask, values.shape)
    old_values = jnp.where(keep, jax.lax.stop_gradient(old_values), 0.0)
    targets = jnp.where(keep, jax.lax.stop_gradient(targets), 0.0)
    values = jnp.where(keep, values, 0.0)
    squared_error = jnp.square(values - targets)
    if clip_eps is not None and not (isinstance(clip_eps, (int, float)) and clip_eps <= 0):
        clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        squared_error = jnp.maximum(squared_error, jnp.square(clipped_values - targets))
    return 0.5 * masked_mean(squared_error, mask)


__all__ = ["masked_mean", "normalize_advantages", "ppo_policy_loss", "ppo_value_loss"]
