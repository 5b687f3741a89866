"""A uniform replay buffer that lives inside the jitted training program.

Static shapes: the buffer is ``capacity`` items preallocated at ``init``, a ring written in
place; under ``jax.vmap`` over seeds each seed has its own buffer of that size, so memory is
``num_seeds * capacity * item_bytes`` — known before compiling (:func:`replay_bytes`), never
grown. (flashbax offers more buffer kinds; uniform sampling over a flat ring is all the
off-policy algorithms here need, in ~60 lines with no further dependency.)

>>> import jax, jax.numpy as jnp
>>> buf = init_replay({"x": jnp.zeros((2,))}, capacity=3)
>>> buf = add(buf, {"x": jnp.arange(8.0).reshape(4, 2)})  # 4 items into 3 slots: the oldest goes
>>> buf.items["x"][:, 0].tolist(), int(buf.size), int(buf.position)
([6.0, 2.0, 4.0], 3, 1)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.types import Array, PRNGKey, PyTree


class ReplayState(NamedTuple):
    """``items``: the stored pytree, every leaf ``[C, ...]``; ``position`` ``i32[]`` the slot
    written next; ``size`` ``i32[]`` how many slots hold items (at most ``C``)."""

    items: PyTree
    position: Array
    size: Array


def init_replay(example_item: PyTree, capacity: int) -> ReplayState:
    """An empty buffer of ``capacity`` items shaped like ``example_item`` (one item, no
    leading axis)."""
    if capacity < 1:
        raise ValueError(f"replay capacity must be >= 1, got {capacity}")
    items = jax.tree.map(
        lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example_item
    )
    zero = jnp.zeros((), jnp.int32)
    return ReplayState(items, zero, zero)


def replay_bytes(example_item: PyTree, capacity: int) -> int:
    """Bytes one buffer of ``capacity`` items takes (per seed)."""
    leaves = jax.tree.leaves(example_item)
    return capacity * sum(int(np.prod(np.shape(x))) * jnp.asarray(x).dtype.itemsize for x in leaves)


def add(state: ReplayState, batch: PyTree) -> ReplayState:
    """Writes the ``B`` items of ``batch`` (leaves ``[B, ...]``) after the newest ones,
    overwriting the oldest once full. ``B`` larger than the capacity keeps the last ones."""
    capacity = jax.tree.leaves(state.items)[0].shape[0]
    b = jax.tree.leaves(batch)[0].shape[0]
    if b > capacity:
        batch = jax.tree.map(lambda x: x[b - capacity :], batch)
        state = state._replace(position=(state.position + b - capacity) % capacity)
        b = capacity
    slots = (state.position + jnp.arange(b)) % capacity
    items = jax.tree.map(lambda buf, x: buf.at[slots].set(x), state.items, batch)
    return ReplayState(
        items, (state.position + b) % capacity, jnp.minimum(state.size + b, capacity)
    )


def sample(state: ReplayState, key: PRNGKey, batch_size: int) -> PyTree:
    """``batch_size`` items drawn uniformly with replacement from the filled slots (leaves
    ``[batch_size, ...]``); from an empty buffer, copies of slot 0 (callers gate on ``size``)."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda buf: buf[index], state.items)
