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

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.algos.base import Transition
from jmarl.config_check import ConfigError
from jmarl.env import spaces
from jmarl.env.base import EnvSpec, TimeStep
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


class ReplayItem(NamedTuple):
    """One stored transition of all agents (leaves ``[..., N, ...]`` under batch axes).

    ``obs``/``next_obs`` observations; ``state``/``next_state`` ``f32[S]``; ``action``
    ``[N, ...]`` as acted; ``reward``/``discount`` ``f32[N]``; ``alive``/``next_alive``
    ``bool[N]``; ``action_mask``/``next_mask`` ``bool[N, M]`` (all True for envs without
    masks).
    """

    obs: PyTree
    state: Array
    action: Array
    reward: Array
    discount: Array
    alive: Array
    action_mask: Array
    next_obs: PyTree
    next_state: Array
    next_alive: Array
    next_mask: Array


def rollout_items(
    traj: Transition, last_ts: TimeStep, mask_width: int, with_state: bool = True
) -> ReplayItem:
    """A rollout ``[T, E]`` and the timestep after it as ``T * E`` :class:`ReplayItem` s, step
    major (the next observation of step ``t`` is step ``t + 1``'s, ``last_ts``'s for the last
    step). ``mask_width``: the masks' last axis (the number of discrete actions). Without
    ``with_state`` the global states are stored as ``f32[0]`` (for learners that never read
    them: no memory spent)."""

    def following(x: Array, last: Array) -> Array:
        return jnp.concatenate([x[1:], last[None]], axis=0)

    def mask(m: Array | None, like: Array) -> Array:
        shape = (*like.shape, mask_width)
        return jnp.ones(shape, bool) if m is None else jnp.broadcast_to(m, shape)

    now, last = traj.action_mask, last_ts.action_mask
    next_mask = None if now is None or last is None else following(now, last)
    if not with_state:
        traj = traj._replace(state=traj.state[..., :0])
        last_ts = last_ts._replace(state=last_ts.state[..., :0])
    item = ReplayItem(
        obs=traj.obs,
        state=traj.state.astype(jnp.float32),
        action=traj.action,
        reward=traj.reward,
        discount=traj.discount,
        alive=traj.alive,
        action_mask=mask(traj.action_mask, traj.alive),
        next_obs=jax.tree.map(following, traj.obs, last_ts.obs),
        next_state=following(traj.state, last_ts.state).astype(jnp.float32),
        next_alive=following(traj.alive, last_ts.alive),
        next_mask=mask(next_mask, traj.alive),
    )
    return jax.tree.map(lambda x: x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), item)


def example_item(spec: EnvSpec, mask_width: int, with_state: bool = True) -> ReplayItem:
    """One :class:`ReplayItem` of zeros shaped like ``spec``'s (to size a buffer; arguments as
    :func:`rollout_items` takes them)."""
    n = spec.num_agents
    obs = spaces.zeros(spec.observation_space, (1, 1, n))
    zeros = jnp.zeros((1, 1, n), jnp.float32)
    alive = jnp.ones((1, 1, n), bool)
    state = jnp.zeros((1, 1, *spec.state_space.shape), jnp.float32)
    action = spaces.zeros(spec.action_space, (1, 1, n))
    traj = Transition(obs, state, action, zeros, zeros, alive, None, {})
    first = lambda tree: jax.tree.map(lambda x: x[0], tree)
    last = TimeStep(
        first(obs), state[0], zeros[0], alive[0], alive[0], alive[0, :, 0], alive[0], None
    )
    return first(rollout_items(traj, last, mask_width, with_state))


def check_simultaneous(spec: EnvSpec, algo: str) -> None:
    """Refuses turn-based games: a replay item pairs each step with the *next* step's
    observation, where in a turn-based game the agent does not act (no legal action to
    bootstrap from) and the opponent's reply (e.g. the move that beats it) is not credited
    to it. Train those with ``ippo`` / ``mappo``, whose advantages follow each agent's own
    actions."""
    if spec.turn_based:
        raise ConfigError(
            f"--algo {algo} learns from one-step replay transitions, which do not follow "
            f"turns; {spec.name!r} is turn-based: use --algo ippo or mappo"
        )


def check_capacity(transitions_per_update: int, buffer_size: int) -> None:
    """A :class:`ConfigError` when one update stores more transitions than the buffer holds."""
    if transitions_per_update > buffer_size:
        raise ConfigError(
            f"one update stores num_envs*rollout_length ({transitions_per_update}) "
            f"transitions: more than buffer_size ({buffer_size}) holds; raise --buffer-size"
        )


def first_learning_update(
    learning_starts: int, steps_per_update: int, num_updates: int, algo: str
) -> int:
    """The first update (counting from 1) after which ``learning_starts`` env steps are stored;
    a :class:`ConfigError` when that leaves no update to learn in."""
    first = max(1, -(-learning_starts // steps_per_update))
    if first > num_updates:
        raise ConfigError(
            f"{algo}: learning_starts ({learning_starts} env steps) leaves no update to learn "
            f"in {num_updates * steps_per_update} env steps; lower --learning-starts or "
            "train longer"
        )
    return first


def gradient_steps(
    grad_step: Callable[[Any, PRNGKey], tuple[Any, dict[str, Array]]],
    num_steps: int,
    metric_names: tuple[str, ...],
) -> Callable[[Any, Array, PRNGKey], tuple[Any, dict[str, Array]]]:
    """``run(state, ready, key) -> (state, metrics)``: ``num_steps`` calls of ``grad_step``
    (under ``lax.scan``, metrics averaged) when ``ready`` (``bool[]``, e.g. enough env steps
    stored), else ``state`` unchanged and zero metrics (``metric_names``)."""

    def train(state: Any, key: PRNGKey) -> tuple[Any, dict[str, Array]]:
        state, metrics = jax.lax.scan(grad_step, state, jax.random.split(key, num_steps))
        return state, jax.tree.map(jnp.mean, metrics)

    def skip(state: Any, key: PRNGKey) -> tuple[Any, dict[str, Array]]:
        return state, {name: jnp.zeros((), jnp.float32) for name in metric_names}

    def run(state: Any, ready: Array, key: PRNGKey) -> tuple[Any, dict[str, Array]]:
        return jax.lax.cond(ready, train, skip, state, key)

    return run
