"""The full game tree of a small two-player game, enumerated with the env's own step.

:func:`build_game_tree` starts from every chance outcome of ``env.chance_outcomes`` and expands
every node by every joint action its acting agents may take (their ``action_mask`` rows; an
agent that does not act has the single action 0), breadth first, one batched
``vmap(env.step_without_reset)`` call per depth. The rules thus live in one place, the env.
The tree is held on the host in numpy, one :class:`Level` per depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.base import Env

MAX_NODES = 2_000_000
CHUNK = 1024
"""Nodes stepped per batched call."""


class Level(NamedTuple):
    """The ``n`` nodes at one depth, as numpy arrays.

    * ``state``: the env states ``[n]``; ``obs``: the observations ``[n, N, ...]``;
    * ``alive`` ``bool[n, N]``: who acts (nobody at terminal nodes); ``mask``
      ``bool[n, N, A]``: their legal actions; ``terminal`` ``bool[n]``;
    * ``parent`` ``int[n]``: the parent's index in the previous level (at depth 0: the
      chance outcome); ``action`` ``int[n, N]``: the joint action from the parent (0 for
      agents that did not act); ``reward`` ``f64[n, N]``: the rewards of that step.
    """

    state: Any
    obs: Any
    alive: np.ndarray
    mask: np.ndarray
    terminal: np.ndarray
    parent: np.ndarray
    action: np.ndarray
    reward: np.ndarray


class GameTree(NamedTuple):
    """``levels`` by depth; ``chance`` ``f64[C]`` the probability of each root (level 0)."""

    levels: tuple[Level, ...]
    chance: np.ndarray

    @property
    def num_nodes(self) -> int:
        return sum(len(level.terminal) for level in self.levels)


def check_enumerable(env: Env) -> int:
    """The number of actions ``A``; raises ``ValueError`` unless ``env`` can be enumerated
    (two agents, discrete actions, ``chance_outcomes`` and ``step_without_reset``)."""
    name = env.spec.name
    if env.spec.num_agents != 2:
        raise ValueError(f"{name!r} has {env.spec.num_agents} agents; only 2-player games")
    if not isinstance(env.spec.action_space, spaces.Discrete):
        raise ValueError(f"{name!r} has no discrete action space")
    if env.chance_outcomes is None or env.step_without_reset is None:
        raise ValueError(
            f"{name!r} cannot be enumerated: it needs env.chance_outcomes and "
            "env.step_without_reset (games such as kuhn_poker, leduc_holdem, matrix games)"
        )
    return int(env.spec.action_space.n)


def _level(state: Any, ts: Any, parent: np.ndarray, action: np.ndarray, a: int) -> Level:
    state, ts = jax.device_get((state, ts))
    terminal = np.asarray(ts.done, bool)
    alive = np.asarray(ts.alive, bool) & ~terminal[:, None]  # nobody acts once it is over
    mask = np.ones((*alive.shape, a), bool) if ts.action_mask is None else ts.action_mask
    return Level(
        state=state,
        obs=ts.obs,
        alive=alive,
        mask=np.asarray(mask, bool),
        terminal=terminal,
        parent=parent,
        action=action,
        reward=np.asarray(ts.reward, np.float64),
    )


def _expand(level: Level) -> tuple[np.ndarray, np.ndarray]:
    """Every (parent, joint action) leaving the level's non-terminal nodes."""
    a = level.mask.shape[-1]
    only_first = np.arange(a) == 0
    choice = np.where(level.alive[..., None], level.mask, only_first)  # [n, 2, A]
    if np.any(level.alive & ~level.mask.any(-1)):
        raise ValueError("an acting agent has no legal action")
    valid = choice[:, 0, :, None] & choice[:, 1, None, :] & ~level.terminal[:, None, None]
    parent, a0, a1 = np.nonzero(valid)
    return parent, np.stack([a0, a1], axis=1).astype(np.int32)


def _step_in_chunks(
    step: Callable[..., Any], states: Any, parent: np.ndarray, action: np.ndarray
) -> tuple[Any, Any]:
    """``step`` of ``states[parent]`` by ``action``, in padded chunks of ``CHUNK`` nodes (one
    compilation for the whole tree)."""
    keys = jax.random.split(jax.random.key(0), CHUNK)
    out = []
    for start in range(0, len(parent), CHUNK):
        rows = np.arange(start, start + CHUNK).clip(max=len(parent) - 1)
        batch = jax.tree.map(lambda x, i=parent[rows]: x[i], states)
        out.append(jax.device_get(step(keys, batch, jnp.asarray(action[rows]))))
    cut = len(parent)
    return jax.tree.map(lambda *xs: np.concatenate(xs)[:cut], *out)


def build_game_tree(env: Env, max_nodes: int = MAX_NODES) -> GameTree:
    """Enumerates the game tree of ``env`` (see the module doc).

    :param max_nodes: refuse games with more nodes (``ValueError``).
    :raises ValueError: ``env`` cannot be enumerated (:func:`check_enumerable`), is too large,
        or runs past ``spec.max_steps`` without ending.
    """
    a = check_enumerable(env)
    chance_outcomes, step_without_reset = env.chance_outcomes, env.step_without_reset
    assert chance_outcomes is not None and step_without_reset is not None
    states, ts, probs = chance_outcomes()
    c = int(np.shape(probs)[0])
    level = _level(states, ts, np.arange(c), np.zeros((c, 2), np.int32), a)
    levels, total = [level], c
    step = jax.jit(jax.vmap(step_without_reset))
    while not level.terminal.all():
        if len(levels) > env.spec.max_steps:
            raise ValueError(f"{env.spec.name!r}: a game runs past max_steps")
        parent, action = _expand(level)
        total += len(parent)
        if total > max_nodes:
            raise ValueError(f"{env.spec.name!r} has more than {max_nodes} nodes to enumerate")
        states, ts = _step_in_chunks(step, level.state, parent, action)
        level = _level(states, ts, parent, action, a)
        levels.append(level)
    return GameTree(tuple(levels), np.asarray(probs, np.float64))
