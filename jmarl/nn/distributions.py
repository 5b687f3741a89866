"""Action distributions as pairs of pure functions over a flat parameter vector.

A policy network outputs ``params`` with a trailing dimension of ``param_size``; the
:class:`ActionDistribution` built for the action space turns those into actions,
log-probabilities and entropies. Leading dimensions (``[E, N, ...]``) are batch dimensions
and pass through every function.

Discrete action masks (``[..., A]`` bool, True = allowed) restrict a categorical
distribution; the Gaussian ignores them, so callers can pass the env's mask unconditionally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env.spaces import Box, Discrete, MultiDiscrete, Space
from jmarl.ops.small_axis import any_last, argmax_last, log_softmax, sum_last
from jmarl.types import Array, PRNGKey

_HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))


class ActionDistribution(NamedTuple):
    """A family of action distributions indexed by a parameter vector.

    :param param_size: size of the trailing dimension of ``params``.
    :param sample: ``(key, params, mask=None) -> action``: draws one action per batch entry.
    :param log_prob: ``(params, action, mask=None) -> [...]``: log-density of ``action``.
    :param entropy: ``(params, mask=None) -> [...]``: entropy of each distribution.
    :param mode: ``(params, mask=None) -> action``: the most likely action.
    """

    param_size: int
    sample: Callable[..., Array]
    log_prob: Callable[..., Array]
    entropy: Callable[..., Array]
    mode: Callable[..., Array]


def masked_logits(logits: Array, mask: Array | None) -> Array:
    """Replaces the logits of disallowed actions by a large finite negative number.

    The filler is half the dtype's most negative value: ``exp`` of it minus any ordinary
    log-normaliser underflows to exactly 0, yet the subtraction cannot overflow to ``-inf``,
    so log-probabilities and their gradients stay finite. Logits of ``-inf`` are raised to
    the same filler. A row whose every action is masked is treated as unmasked, so it still
    is a valid distribution (over the raw logits) rather than ``nan``.
    """
    floor = jnp.asarray(jnp.finfo(logits.dtype).min / 2, logits.dtype)
    logits = jnp.maximum(logits, floor)
    if mask is None:
        return logits
    mask = jnp.broadcast_to(jnp.asarray(mask, bool), logits.shape)
    mask = mask | ~any_last(mask)[..., None]
    return jnp.where(mask, logits, floor)


def make_categorical(num_actions: int) -> ActionDistribution:
    """A categorical distribution over ``num_actions`` actions, parameterised by logits.

    ``params``: ``[..., num_actions]`` unnormalised logits; actions are int32 ``[...]``.
    Masked actions have probability exactly 0: they are never sampled nor chosen by ``mode``,
    and the entropy sums over allowed actions only (``0 * log 0`` counted as 0). The
    log-probability of a masked action is a huge finite negative number rather than
    ``-inf``. See :func:`masked_logits` for an all-masked row.

    ``sample`` draws ``jax.random.categorical``'s actions. Up to
    :data:`jmarl.ops.small_axis.UNROLL_LIMIT` actions, the reductions over the action axis are
    elementwise code (:mod:`jmarl.ops.small_axis`, much faster on CPU), and ``log_prob`` and
    ``entropy`` support reverse-mode autodiff (``jax.grad``) but not forward-mode (``jax.jvp``).

    :param num_actions: number of discrete actions ``A``.
    """

    def sample(key: PRNGKey, params: Array, mask: Array | None = None) -> Array:
        # jax.random.categorical's draw (Gumbel-max), with the argmax over the short axis
        logits = masked_logits(params, mask)
        return argmax_last(logits + jax.random.gumbel(key, logits.shape, logits.dtype))

    def log_prob(params: Array, action: Array, mask: Array | None = None) -> Array:
        log_p = log_softmax(masked_logits(params, mask))
        index = jnp.asarray(action, jnp.int32)[..., None]
        return jnp.take_along_axis(log_p, index, axis=-1)[..., 0]

    def entropy(params: Array, mask: Array | None = None) -> Array:
        log_p = log_softmax(masked_logits(params, mask))
        p = jnp.exp(log_p)
        # p is 0 wherever log_p is the huge filler, so the product is 0 there: 0 * log 0 = 0.
        return -sum_last(jnp.where(p > 0, p * log_p, 0.0))

    def mode(params: Array, mask: Array | None = None) -> Array:
        return argmax_last(masked_logits(params, mask))

    return ActionDistribution(num_actions, sample, log_prob, entropy, mode)


def make_gaussian(
    action_dim: int, min_log_std: float = -5.0, max_log_std: float = 2.0
) -> ActionDistribution:
    """A diagonal Gaussian over ``action_dim`` unbounded real actions.

    ``params``: ``[..., 2 * D]``, the mean followed by the log standard deviation; actions are
    ``[..., D]``. ``log_prob`` and ``entropy`` sum over the ``D`` action dimensions. Actions are
    not squashed: the environment clips them to its bounds. Masks are ignored.

    :param action_dim: number of action dimensions ``D``.
    :param min_log_std: lower clip of the log standard deviation; keeps log-densities bounded.
    :param max_log_std: upper clip; keeps exploration noise from exploding.
    """

    def split(params: Array) -> tuple[Array, Array]:
        mean, log_std = params[..., :action_dim], params[..., action_dim:]
        return mean, jnp.clip(log_std, min_log_std, max_log_std)

    def sample(key: PRNGKey, params: Array, mask: Array | None = None) -> Array:
        del mask
        mean, log_std = split(params)
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def log_prob(params: Array, action: Array, mask: Array | None = None) -> Array:
        del mask
        mean, log_std = split(params)
        z = (action - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * jnp.square(z) - log_std - _HALF_LOG_2PI, axis=-1)

    def entropy(params: Array, mask: Array | None = None) -> Array:
        del mask
        _, log_std = split(params)
        return jnp.sum(0.5 + _HALF_LOG_2PI + log_std, axis=-1)

    def mode(params: Array, mask: Array | None = None) -> Array:
        del mask
        return split(params)[0]

    return ActionDistribution(2 * action_dim, sample, log_prob, entropy, mode)


def make_action_distribution(space: Space) -> ActionDistribution:
    """The default distribution for one agent's action ``space``.

    ``Discrete(n)`` gives :func:`make_categorical`; a 1-D ``Box`` gives :func:`make_gaussian`.

    :raises NotImplementedError: for ``MultiDiscrete`` and for a ``Box`` that is not 1-D.
    :raises TypeError: for any other space.
    """
    if isinstance(space, Discrete):
        return make_categorical(space.n)
    if isinstance(space, Box):
        if len(space.shape) != 1:
            raise NotImplementedError(
                f"only 1-D Box action spaces are supported, got shape {space.shape} ({space!r})"
            )
        return make_gaussian(space.shape[0])
    if isinstance(space, MultiDiscrete):
        raise NotImplementedError(f"no action distribution for MultiDiscrete yet: {space!r}")
    raise TypeError(f"no action distribution for space {space!r}; expected Discrete or a 1-D Box")


__all__ = [
    "ActionDistribution",
    "make_action_distribution",
    "make_categorical",
    "make_gaussian",
]
