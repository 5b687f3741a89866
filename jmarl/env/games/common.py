"""Pieces shared by the small games: turn-based timesteps and chance enumerated at reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env.base import ChanceFn, EnvState, ResetFn, TimeStep
from jmarl.types import Array, PRNGKey

Start = Callable[[Array], tuple[EnvState, TimeStep]]
"""``start(outcome) -> (state, TimeStep)``: the first step of the game for one chance outcome
(e.g. the dealt cards ``i32[K]``)."""


def turn_timestep(
    obs: Array, player: Array, legal: Array, reward: Array, end: Array | bool
) -> TimeStep:
    """The :class:`TimeStep` of a two-player turn-based game.

    Only ``player`` is alive (nobody once the game has ended); its ``action_mask`` row is
    ``legal``, the other row is all False. The global state is both players' observations.

    :param obs: ``f32[2, D]`` each player's observation.
    :param player: ``i32[]`` the player to act next.
    :param legal: ``bool[A]`` the legal moves of ``player``.
    :param reward: ``f32[2]`` the rewards of the step that led here.
    :param end: ``bool[]`` the game is over (both players terminate).
    """
    end = jnp.asarray(end, bool)
    alive = (jnp.arange(2) == player) & ~end
    return TimeStep(
        obs=obs,
        state=obs.reshape(-1),
        reward=reward.astype(jnp.float32),
        terminated=jnp.broadcast_to(end, (2,)),
        truncated=jnp.zeros((2,), bool),
        done=end,
        alive=alive,
        action_mask=alive[:, None] & legal[None, :],
    )


def uniform_chance(outcomes: np.ndarray, start: Start) -> tuple[ResetFn, ChanceFn]:
    """``reset`` drawing one of ``outcomes`` (``[C, ...]``, e.g. every deal of the cards)
    uniformly, and the matching ``chance_outcomes`` (all ``C`` first steps, probability
    ``1 / C`` each)."""
    table = jnp.asarray(outcomes)
    count = table.shape[0]

    def reset(key: PRNGKey) -> tuple[EnvState, TimeStep]:
        return start(table[jax.random.randint(key, (), 0, count)])

    def chance_outcomes() -> tuple[Any, TimeStep, Array]:
        states, tss = jax.vmap(start)(table)
        return states, tss, jnp.full((count,), 1.0 / count, jnp.float32)

    return reset, chance_outcomes
