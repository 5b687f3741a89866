"""Conversions at the boundary between jmarl (JAX) and gymnasium / numpy.

* :func:`from_gymnasium_space` / :func:`to_gymnasium_space` translate space descriptions.
  ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, ``Dict`` and ``Tuple`` map onto
  the jmarl space of the same name; anything else raises ``NotImplementedError`` naming the
  key path of the offending sub-space (e.g. ``obs['image'][1]``).
* :func:`tree_to_numpy` / :func:`tree_to_jax` move pytrees across, with explicit dtypes: a
  leaf keeps its own dtype unless a space names another one, and a cast that would lose the
  kind of a value (float to int, anything to bool) is refused rather than done silently.

jmarl spaces describe JAX arrays, so a gymnasium dtype JAX cannot hold is replaced by the
one JAX actually uses: with ``jax_enable_x64`` off (the default) ``float64``, ``int64`` and
``uint64`` become ``float32``, ``int32`` and ``uint32``. Every other dtype name is kept::

    >>> import gymnasium
    >>> from_gymnasium_space(gymnasium.spaces.Discrete(5))
    Discrete(n=5, dtype='int32')
    >>> to_gymnasium_space(from_gymnasium_space(gymnasium.spaces.Box(0, 255, (2,), "uint8")))
    Box(0, 255, (2,), uint8)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.types import PyTree

_SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"


def _where(path: str) -> str:
    return path if path else "<root>"


def _unsupported(path: str, space: Any, why: str = "") -> NotImplementedError:
    reason = why or f"only {_SUPPORTED} are supported"
    return NotImplementedError(
        f"cannot convert the gymnasium space at {_where(path)}, {space!r}: {reason}"
    )


def jax_dtype(dtype: Any) -> np.dtype:
    """The dtype JAX uses for arrays of ``dtype`` (64-bit types narrow unless x64 is on)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(dtype)))


def _bound(values: np.ndarray) -> float | tuple[float, ...]:
    """A scalar if every element is the same, else a flat tuple of floats."""
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size > 0 and np.all(flat == flat[0]):
        return float(flat[0])
    return tuple(float(v) for v in flat)


def from_gymnasium_space(space: gymnasium.spaces.Space, path: str = "") -> spaces.Space:
    """A gymnasium space as the equivalent jmarl space.

    :param space: a gymnasium ``Box``, ``Discrete`` (``start=0``), ``MultiDiscrete`` (a vector,
        ``start=0``), ``MultiBinary``, or a ``Dict`` / ``Tuple`` of those (converted
        recursively; ``Dict`` keys come out sorted).
    :param path: where ``space`` sits, used only in error messages (e.g. ``"obs"``); nested
        sub-spaces extend it with ``['key']`` and ``[index]``.
    :returns: the jmarl space; ``Box`` bounds are a scalar when uniform, else a flat tuple.
    :raises NotImplementedError: for any other space (``Text``, ``Graph``, ``Sequence``,
        ``OneOf``, ...) or an unsupported option, naming the key path and the space.

    >>> import gymnasium
    >>> text = gymnasium.spaces.Text(3)
    >>> from_gymnasium_space(gymnasium.spaces.Tuple([text]), "obs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    NotImplementedError: cannot convert the gymnasium space at obs[0], Text(1, 3, ...): only ...
    """
    gs = gymnasium.spaces
    if isinstance(space, gs.Box):
        return spaces.Box(
            low=_bound(space.low),
            high=_bound(space.high),
            shape=tuple(int(s) for s in space.shape),
            dtype=jax_dtype(space.dtype).name,
        )
    if isinstance(space, gs.Discrete):
        if int(space.start) != 0:
            raise _unsupported(path, space, f"start={int(space.start)} (only 0 is supported)")
        return spaces.Discrete(int(space.n), jax_dtype(space.dtype).name)
    if isinstance(space, gs.MultiDiscrete):
        if space.nvec.ndim != 1:
            raise _unsupported(path, space, f"nvec has shape {space.nvec.shape}, not a vector")
        if np.any(space.start != 0):
            raise _unsupported(path, space, "start must be 0 everywhere")
        nvec = tuple(int(n) for n in space.nvec)
        return spaces.MultiDiscrete(nvec, jax_dtype(space.dtype).name)
    if isinstance(space, gs.MultiBinary):
        return spaces.MultiBinary(tuple(int(s) for s in space.shape), jax_dtype(space.dtype).name)
    if isinstance(space, gs.Dict):
        items = []
        for key, sub in space.spaces.items():
            if not isinstance(key, str):
                raise _unsupported(path, space, f"key {key!r} is not a string")
            items.append((key, from_gymnasium_space(sub, f"{path}[{key!r}]")))
        return spaces.Dict(tuple(items))
    if isinstance(space, gs.Tuple):
        return spaces.Tuple(
            tuple(from_gymnasium_space(sub, f"{path}[{i}]") for i, sub in enumerate(space.spaces))
        )
    raise _unsupported(path, space)


def _box_bound(bound: float | tuple[float, ...], space: spaces.Box) -> Any:
    """Bounds as gymnasium wants them: scalars, or arrays in a float Box's own dtype."""
    if not isinstance(bound, tuple):
        return float(bound)
    dtype = np.dtype(space.dtype) if np.dtype(space.dtype).kind == "f" else np.float64
    return np.asarray(bound, dtype).reshape(space.shape)


def to_gymnasium_space(space: spaces.Space) -> gymnasium.spaces.Space:
    """A jmarl space as the equivalent gymnasium space (the inverse of
    :func:`from_gymnasium_space`), keeping shapes, bounds and dtypes.

    :raises NotImplementedError: for a ``MultiBinary`` whose dtype is not ``int8``
        (gymnasium's ``MultiBinary`` is always ``int8``).
    :raises TypeError: if ``space`` is not a jmarl space.
    """
    gs = gymnasium.spaces
    if isinstance(space, spaces.Box):
        low, high = _box_bound(space.low, space), _box_bound(space.high, space)
        return gs.Box(low, high, space.shape, np.dtype(space.dtype))
    if isinstance(space, spaces.Discrete):
        return gs.Discrete(space.n, dtype=np.dtype(space.dtype))
    if isinstance(space, spaces.MultiDiscrete):
        return gs.MultiDiscrete(np.asarray(space.nvec, np.int64), dtype=np.dtype(space.dtype))
    if isinstance(space, spaces.MultiBinary):
        if np.dtype(space.dtype) != np.int8:
            raise NotImplementedError(
                f"gymnasium's MultiBinary is always int8; cannot express {space!r}"
            )
        shape = space.shape
        return gs.MultiBinary(shape[0] if len(shape) == 1 else list(shape))
    if isinstance(space, spaces.Dict):
        return gs.Dict({k: to_gymnasium_space(s) for k, s in space.spaces})
    if isinstance(space, spaces.Tuple):
        return gs.Tuple(tuple(to_gymnasium_space(s) for s in space.spaces))
    raise TypeError(f"not a jmarl space: {space!r}")


# Source kinds each target kind accepts: never float -> int or anything -> bool.
_CASTABLE_FROM = {"b": "b", "i": "biu", "u": "biu", "f": "biuf", "c": "biufc"}


def _cast(x: np.ndarray, dtype: np.dtype, path: str) -> np.ndarray:
    """``x`` as ``dtype``, refusing casts that change what a value means or overflow."""
    if x.dtype == dtype:
        return x
    if x.dtype.kind not in _CASTABLE_FROM.get(dtype.kind, ""):
        raise TypeError(f"{_where(path)}: will not cast {x.dtype} to {dtype}")
    if dtype.kind in "iu" and x.dtype.kind in "iu" and x.size:
        info = np.iinfo(dtype)
        if x.min() < info.min or x.max() > info.max:
            raise OverflowError(f"{_where(path)}: values of {x.dtype} do not fit in {dtype}")
    return x.astype(dtype)


def _leaf_to_numpy(x: Any, dtype: np.dtype | None, path: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object:
        raise TypeError(f"{_where(path)}: {type(x).__name__} is not an array")
    return a if dtype is None else _cast(a, dtype, path)


def _convert(tree: Any, space: spaces.Space, path: str, leaf: Any) -> Any:
    """Walks ``tree`` along ``space``'s structure, converting leaves with ``leaf``."""
    if isinstance(space, spaces.Dict):
        if not isinstance(tree, Mapping):
            raise ValueError(f"{_where(path)}: expected a dict, got {type(tree).__name__}")
        keys = space.keys()
        if set(tree) != set(keys):
            missing = sorted(set(keys) - set(tree))
            extra = sorted(set(tree) - set(keys), key=str)
            raise ValueError(f"{_where(path)}: missing keys {missing}, unexpected keys {extra}")
        return {k: _convert(tree[k], s, f"{path}[{k!r}]", leaf) for k, s in space.spaces}
    if isinstance(space, spaces.Tuple):
        if not isinstance(tree, (tuple, list)) or len(tree) != len(space.spaces):
            raise ValueError(
                f"{_where(path)}: expected a tuple of {len(space.spaces)}, got {tree!r:.80}"
            )
        return tuple(
            _convert(t, s, f"{path}[{i}]", leaf) for i, (t, s) in enumerate(zip(tree, space.spaces))
        )
    return leaf(tree, np.dtype(space.dtype), path)


def tree_to_numpy(tree: PyTree, space: spaces.Space | None = None) -> PyTree:
    """A pytree of arrays (JAX, numpy or Python scalars) as numpy arrays.

    :param tree: the values; with ``space``, a nested dict / tuple matching its structure.
        Leaves may carry leading batch dimensions (no shape check is made).
    :param space: if given, every leaf is cast to its sub-space's dtype (int -> float only where
        the space is a float space; float -> int, overflowing and kind-changing casts raise).
        If None, each leaf keeps its own dtype (Python ``int``/``float``/``bool`` become
        ``int64``/``float64``/``bool``, as numpy makes them).
    :raises ValueError: the structure does not match ``space`` (the message names the path).
    :raises TypeError: a leaf cannot be cast to the space's dtype without changing its kind.

    >>> tree_to_numpy({"a": 1, "b": 0.5}, spaces.Dict.from_mapping(
    ...     {"a": spaces.Discrete(3), "b": spaces.Box(0.0, 1.0, ())}))
    {'a': array(1, dtype=int32), 'b': array(0.5, dtype=float32)}
    """
    tree = jax.device_get(tree)
    if space is None:
        return jax.tree.map(lambda x: _leaf_to_numpy(x, None, "leaf"), tree)
    return _convert(tree, space, "", _leaf_to_numpy)


def _leaf_to_jax(x: Any, dtype: np.dtype | None, path: str) -> jax.Array:
    if isinstance(x, jax.Array) and (dtype is None or x.dtype == dtype):
        return x
    a = _leaf_to_numpy(x, jax_dtype(dtype if dtype is not None else np.asarray(x).dtype), path)
    return jnp.asarray(a, dtype=a.dtype)


def tree_to_jax(tree: PyTree, space: spaces.Space | None = None) -> PyTree:
    """A pytree of numpy arrays / Python scalars as JAX arrays with explicit (strong) dtypes.

    Like :func:`tree_to_numpy`, but each target dtype is the one JAX can hold
    (:func:`jax_dtype`: ``int64`` -> ``int32`` with x64 off, refusing values that do not fit).
    Python scalars become strongly typed arrays, so a jitted function sees the same input
    types whether it is fed ``3`` or ``np.int32(3)``.

    >>> tree_to_jax((1, 2.0))
    (Array(1, dtype=int32), Array(2., dtype=float32))
    """
    if space is None:
        return jax.tree.map(lambda x: _leaf_to_jax(x, None, "leaf"), tree)
    return _convert(tree, space, "", _leaf_to_jax)


__all__ = [
    "from_gymnasium_space",
    "jax_dtype",
    "to_gymnasium_space",
    "tree_to_jax",
    "tree_to_numpy",
]
