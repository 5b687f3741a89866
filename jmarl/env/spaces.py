"""Space descriptions for jmarl environments, independent of gymnasium.

Spaces are frozen dataclasses: hashable, usable as static arguments to ``jax.jit``
and comparable with ``==`` (the sharing code uses equality to decide whether
agents may share a policy). ``bridge`` converts gymnasium spaces to these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.types import Array, PRNGKey, PyTree


@dataclass(frozen=True)
class Box:
    """A real-valued array of ``shape`` with elementwise bounds ``[low, high]``.

    ``low``/``high`` are scalars or flat tuples (one value per element).
    """

    low: float | tuple[float, ...]
    high: float | tuple[float, ...]
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Discrete:
    """An integer in ``[0, n)``."""

    n: int
    dtype: str = "int32"

    @property
    def shape(self) -> tuple[int, ...]:
        return ()


@dataclass(frozen=True)
class MultiDiscrete:
    """A vector of integers, element ``i`` in ``[0, nvec[i])``."""

    nvec: tuple[int, ...]
    dtype: str = "int32"

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)


@dataclass(frozen=True)
class MultiBinary:
    """A binary array of ``shape``."""

    shape: tuple[int, ...]
    dtype: str = "int8"


@dataclass(frozen=True)
class Dict:
    """A mapping of named sub-spaces. Keys are kept in sorted order."""

    spaces: tuple[tuple[str, Space], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "spaces", tuple(sorted(self.spaces, key=lambda kv: kv[0])))

    @classmethod
    def from_mapping(cls, mapping: dict[str, Space]) -> Dict:
        return cls(tuple(mapping.items()))

    def __getitem__(self, key: str) -> Space:
        return dict(self.spaces)[key]

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.spaces)


@dataclass(frozen=True)
class Tuple:
    """An ordered tuple of sub-spaces."""

    spaces: tuple[Space, ...]


Space = Union[Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple]  # noqa: UP007


def sample(key: PRNGKey, space: Space, batch_shape: tuple[int, ...] = ()) -> PyTree:
    """Draws a uniform sample of ``space`` with leading ``batch_shape``.

    Unbounded Box dimensions are sampled from a standard normal.
    """
    if isinstance(space, Box):
        shape = batch_shape + space.shape
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32).reshape(-1), (space.size,))
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32).reshape(-1), (space.size,))
        low, high = low.reshape(space.shape), high.reshape(space.shape)
        bounded = jnp.isfinite(low) & jnp.isfinite(high)
        k1, k2 = jax.random.split(key)
        u = jax.random.uniform(
            k1, shape, minval=jnp.where(bounded, low, 0.0), maxval=jnp.where(bounded, high, 1.0)
        )
        return jnp.where(bounded, u, jax.random.normal(k2, shape)).astype(space.dtype)
    if isinstance(space, Discrete):
        return jax.random.randint(key, batch_shape, 0, space.n, dtype=space.dtype)
    if isinstance(space, MultiDiscrete):
        nvec = jnp.asarray(space.nvec)
        u = jax.random.uniform(key, batch_shape + space.shape)
        return jnp.floor(u * nvec).astype(space.dtype)
    if isinstance(space, MultiBinary):
        return jax.random.bernoulli(key, 0.5, batch_shape + space.shape).astype(space.dtype)
    if isinstance(space, Dict):
        keys = jax.random.split(key, len(space.spaces))
        return {k: sample(kk, s, batch_shape) for kk, (k, s) in zip(keys, space.spaces)}
    if isinstance(space, Tuple):
        keys = jax.random.split(key, len(space.spaces))
        return tuple(sample(kk, s, batch_shape) for kk, s in zip(keys, space.spaces))
    raise TypeError(f"unknown space {space!r}")


def contains(space: Space, x: PyTree) -> bool:
    """Whether the (unbatched, concrete) value ``x`` lies in ``space``."""
    if isinstance(space, Box):
        a = np.asarray(x)
        low = np.broadcast_to(np.asarray(space.low, np.float32).reshape(-1), (space.size,))
        high = np.broadcast_to(np.asarray(space.high, np.float32).reshape(-1), (space.size,))
        flat = a.reshape(-1)
        return a.shape == space.shape and bool(np.all(flat >= low) and np.all(flat <= high))
    if isinstance(space, Discrete):
        a = np.asarray(x)
        return a.shape == () and 0 <= int(a) < space.n
    if isinstance(space, MultiDiscrete):
        a = np.asarray(x)
        return a.shape == space.shape and bool(np.all((a >= 0) & (a < np.asarray(space.nvec))))
    if isinstance(space, MultiBinary):
        a = np.asarray(x)
        return a.shape == space.shape and bool(np.all((a == 0) | (a == 1)))
    if isinstance(space, Dict):
        return (
            isinstance(x, dict)
            and set(x) == set(space.keys())
            and all(contains(s, x[k]) for k, s in space.spaces)
        )
    if isinstance(space, Tuple):
        return len(x) == len(space.spaces) and all(contains(s, v) for s, v in zip(space.spaces, x))
    raise TypeError(f"unknown space {space!r}")


def flat_dim(space: Space) -> int:
    """Number of scalars in one flattened (one-hot for discrete) sample of ``space``."""
    if isinstance(space, Box):
        return space.size
    if isinstance(space, Discrete):
        return space.n
    if isinstance(space, MultiDiscrete):
        return sum(space.nvec)
    if isinstance(space, MultiBinary):
        return math.prod(space.shape)
    if isinstance(space, Dict):
        return sum(flat_dim(s) for _, s in space.spaces)
    if isinstance(space, Tuple):
        return sum(flat_dim(s) for s in space.spaces)
    raise TypeError(f"unknown space {space!r}")


def zeros(space: Space, batch_shape: tuple[int, ...] = ()) -> PyTree:
    """An all-zero value of ``space`` with leading ``batch_shape`` (used to fill dead agents)."""
    if isinstance(space, Dict):
        return {k: zeros(s, batch_shape) for k, s in space.spaces}
    if isinstance(space, Tuple):
        return tuple(zeros(s, batch_shape) for s in space.spaces)
    return jnp.zeros(batch_shape + tuple(space.shape), space.dtype)


def as_array_spec(space: Space) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of a non-nested space's sample."""
    if isinstance(space, (Dict, Tuple)):
        raise TypeError("nested spaces have no single array spec")
    return tuple(space.shape), space.dtype


__all__ = [
    "Array",
    "Box",
    "Dict",
    "Discrete",
    "MultiBinary",
    "MultiDiscrete",
    "Space",
    "Tuple",
    "as_array_spec",
    "contains",
    "flat_dim",
    "sample",
    "zeros",
]
