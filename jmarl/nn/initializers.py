"""Weight initializers that compile to plain XLA ops (no LAPACK custom calls).

``orthogonal`` matches ``flax.linen.initializers.orthogonal`` in distribution (a scaled,
Haar-distributed orthogonal matrix) but orthonormalises a Gaussian matrix with modified
Gram-Schmidt in ``lax.fori_loop`` instead of a QR decomposition. Why: inside one jitted
training program, a *batched* LAPACK QR (what ``vmap`` makes of per-agent initialisation in
independent mode) was seen to deadlock XLA's CPU runtime now and then (jax/jaxlib 0.10.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jmarl.types import Array, PRNGKey

Initializer = Callable[..., Array]


def gram_schmidt(a: Array) -> Array:
    """Orthonormal columns spanning ``a`` ``[n, k]`` (``n >= k``), same column order.

    Modified Gram-Schmidt with one re-orthogonalisation pass; column ``j`` is
    ``v_j - Q_{<j} Q_{<j}^T v_j`` normalised. For a Gaussian ``a`` this equals the Q factor of
    ``a``'s QR decomposition with positive diagonal, hence Haar distributed.
    """
    k = a.shape[1]

    def body(j: Array, q: Array) -> Array:
        earlier = (jnp.arange(k) < j).astype(a.dtype)
        v = q[:, j]
        for _ in range(2):
            v = v - q @ ((q.T @ v) * earlier)
        return q.at[:, j].set(v / jnp.sqrt(jnp.sum(v * v)))

    return jax.lax.fori_loop(0, k, body, a)


def orthogonal(scale: float = 1.0) -> Initializer:
    """``scale`` times a random orthogonal matrix, shaped ``(prod(shape[:-1]), shape[-1])``.

    >>> w = orthogonal(2.0)(jax.random.key(0), (5, 3))
    >>> bool(jnp.allclose(w.T @ w, 4.0 * jnp.eye(3), atol=1e-4))
    True
    """

    def init(key: PRNGKey, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        rows, cols = math.prod(shape[:-1]), shape[-1]
        n, k = max(rows, cols), min(rows, cols)
        q = gram_schmidt(jax.random.normal(key, (n, k), jnp.float32))
        if rows < cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init
