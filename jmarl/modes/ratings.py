"""Ratings and opponent weights of a population, as pure array functions (jittable).

* Elo (Elo, 1978): player ``a`` is expected to score ``1 / (1 + 10 ** ((r_b - r_a) / 400))``
  against ``b`` (win 1, draw 1/2, loss 0); after games it moves by ``k * (score - expected)``
  and its opponent by the opposite. :func:`elo_update` applies one update's batch of games
  as one match per player, scored by its average: a player moves by ``k`` times its mean
  surplus over the batch (so ratings do not swing with the number of envs), each opponent by
  the opposite of its share; the ratings from before the batch are used throughout.
* Prioritized fictitious self-play (PFSP, Vinyals et al., 2019, "Grandmaster level in
  StarCraft II"): an opponent is drawn with weight ``f(p)`` of the learner's win rate ``p``
  against it: ``squared`` ``(1 - p)^2`` (hard opponents first), ``variance`` ``p (1 - p)``
  (opponents of the learner's level), ``linear`` ``1 - p``.

>>> import jax.numpy as jnp
>>> elo_update(jnp.array([1000.0, 1000.0]), jnp.array([[0.0, 1.0]]), jnp.array([[0.0, 1.0]]),
...            jnp.array([0]), k=32.0).tolist()  # player 0 beats player 1 once
[1016.0, 984.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from jmarl.types import Array

INITIAL_RATING = 1000.0
PFSP_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "squared": lambda p: (1.0 - p) ** 2,  # hard opponents first
    "variance": lambda p: p * (1.0 - p),  # opponents of about the learner's level first
    "linear": lambda p: 1.0 - p,
}
"""PFSP's ``f(p)`` by name, for numpy or JAX arrays of win rates (the bridge uses them too)."""
PFSP_WEIGHTINGS = tuple(PFSP_FUNCTIONS)


def elo_expected(rating: Array, opponent: Array) -> Array:
    """Expected score of ``rating`` against ``opponent`` (any broadcasting shapes)."""
    return 1.0 / (1.0 + 10.0 ** ((opponent - rating) / 400.0))


def elo_update(ratings: Array, games: Array, score: Array, players: Array, k: float) -> Array:
    """Ratings ``f32[C]`` after a batch of games.

    :param games: ``f32[M, C]`` games player ``players[m]`` played against candidate ``c``.
    :param score: ``f32[M, C]`` its score in them (wins + draws / 2).
    :param players: ``i32[M]`` the rating index of each row's player.
    :param k: the Elo K-factor (points at stake in one update's match of a player).
    """
    own = ratings[players][:, None]
    surplus = score - games * elo_expected(own, ratings[None, :])  # [M, C]
    delta = k * surplus / jnp.maximum(games.sum(axis=1, keepdims=True), 1.0)  # row's gain
    return ratings.at[players].add(delta.sum(axis=1)) - delta.sum(axis=0)


def win_rates(games: Array, score: Array, prior: float = 1.0) -> Array:
    """Win-rate estimates ``(score + prior / 2) / (games + prior)``: 1/2 before any game."""
    return (score + 0.5 * prior) / (games + prior)


def pfsp_weights(win_rate: Array, valid: Array, weighting: str = "squared") -> Array:
    """Normalised PFSP weights over the last axis (``valid`` candidates only); uniform over
    the valid ones where every weight is 0 (e.g. all beaten for sure).

    :param win_rate: ``f32[..., C]`` the learner's win rate against each candidate.
    :param valid: ``bool[..., C]`` candidates that exist.
    """
    if weighting not in PFSP_FUNCTIONS:
        raise ValueError(f"unknown PFSP weighting {weighting!r}; choose from {PFSP_WEIGHTINGS}")
    w = PFSP_FUNCTIONS[weighting](win_rate)
    return normalise(jnp.where(valid, w, 0.0), valid)


def normalise(weights: Array, valid: Array) -> Array:
    """``weights`` summing to 1 over the last axis; uniform over ``valid`` where they are 0."""
    total = weights.sum(axis=-1, keepdims=True)
    uniform = valid / jnp.maximum(valid.sum(axis=-1, keepdims=True), 1)
    return jnp.where(total > 0, weights / jnp.where(total > 0, total, 1.0), uniform)
