"""Reductions over a short trailing axis (a handful of actions) as elementwise code.

XLA:CPU (jaxlib 0.10) hands ``reduce`` ops to YNNPACK, whose per-call cost dwarfs the work of
reducing 5 numbers per row. Over a static trailing axis of at most :data:`UNROLL_LIMIT`
entries, these functions combine the axis' slices with elementwise ops instead, which XLA
fuses with their neighbours into one loop. Longer axes use the ``jnp`` reductions. Values
equal the ``jnp`` functions' (sums may round differently: they run left to right).

Used by the categorical distribution (:func:`jmarl.nn.distributions.make_categorical`), on
the hot path of acting and of every policy-gradient step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jmarl.types import Array

UNROLL_LIMIT = 16  # trailing axes up to this long are reduced slice by slice


def _unrolled(x: Array) -> bool:
    """Whether ``x``'s trailing axis is reduced slice by slice (1 to :data:`UNROLL_LIMIT`)."""
    return 0 < x.shape[-1] <= UNROLL_LIMIT


def _slices(x: Array) -> list[Array]:
    return [x[..., i] for i in range(x.shape[-1])]


def _reduce(x: Array, op: Callable[[Array, Array], Array], fallback: Callable[..., Array]) -> Array:
    if not _unrolled(x):
        return fallback(x, axis=-1)
    return functools.reduce(op, _slices(x))


def sum_last(x: Array) -> Array:
    """``jnp.sum(x, axis=-1)``: ``[..., A] -> [...]``."""
    return _reduce(x, jnp.add, jnp.sum)


def max_last(x: Array) -> Array:
    """``jnp.max(x, axis=-1)``: ``[..., A] -> [...]`` (NaN wins, as in ``jnp.max``)."""
    return _reduce(x, jnp.maximum, jnp.max)


def any_last(x: Array) -> Array:
    """``jnp.any(x, axis=-1)`` of a boolean array: ``[..., A] -> [...]``."""
    return _reduce(x, jnp.logical_or, jnp.any)


def argmax_last(x: Array) -> Array:
    """``jnp.argmax(x, axis=-1)`` as int32 ``[...]``: the first maximal entry, and the first NaN
    if any (as ``jnp.argmax``)."""
    if not _unrolled(x):
        return jnp.argmax(x, axis=-1).astype(jnp.int32)
    parts = _slices(x)
    best, index = parts[0], jnp.zeros(x.shape[:-1], jnp.int32)
    for i, v in enumerate(parts[1:], start=1):
        better = (v > best) | (jnp.isnan(v) & ~jnp.isnan(best))
        best = jnp.where(better, v, best)
        index = jnp.where(better, jnp.int32(i), index)
    return index


def log_softmax(x: Array) -> Array:
    """``jax.nn.log_softmax(x, axis=-1)``: ``[..., A] -> [..., A]``, with the same gradients.

    On a short axis its reverse-mode gradient is given by hand (``g - softmax(x) *
    sum(g)``), since autodiff's would sum the cotangent of the broadcast log-normaliser with a
    ``reduce``; forward-mode autodiff (``jax.jvp``) is not defined there.
    """
    if not _unrolled(x):
        return jax.nn.log_softmax(x, axis=-1)
    return _short_log_softmax(x)


@jax.custom_vjp
def _short_log_softmax(x: Array) -> Array:
    shifted = x - max_last(x)[..., None]
    return shifted - jnp.log(sum_last(jnp.exp(shifted)))[..., None]


def _short_log_softmax_fwd(x: Array) -> tuple[Array, Array]:
    out = _short_log_softmax(x)
    return out, out


def _short_log_softmax_bwd(out: Array, g: Array) -> tuple[Array]:
    return (g - jnp.exp(out) * sum_last(g)[..., None],)


_short_log_softmax.defvjp(_short_log_softmax_fwd, _short_log_softmax_bwd)
