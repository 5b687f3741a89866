"""Tic-tac-toe and connect four (Pgx wrapped): the turn-based protocol, and the reward-credit
rule on played games (the loser's last move receives -1)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.env.base import TimeStep
from jmarl.ops.turns import credit_to_last_action
from jmarl.testing import check_env


@functools.cache
def _jitted(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    env = jmarl.make(name)
    assert env.step_without_reset is not None
    return jax.jit(env.reset), jax.jit(env.step_without_reset)


def _play(name: str, moves: list[int]) -> tuple[int, list[TimeStep]]:
    """Plays ``moves`` (alternating, from the first mover's); returns the first mover and the
    TimeSteps (first one included)."""
    reset, step = _jitted(name)
    state, ts = reset(jax.random.key(0))
    first = int(np.argmax(ts.alive))
    out = [ts]
    for move in moves:
        actions = np.full(2, -1)
        actions[int(np.argmax(ts.alive))] = move  # the other entry is ignored
        state, ts = step(jax.random.key(1), state, jnp.asarray(actions))
        out.append(ts)
    return first, out


@pytest.mark.parametrize("name", ["tic_tac_toe", "connect_four"])
def test_check_env(name: str) -> None:
    check_env(jmarl.make(name), jax.random.key(0), num_steps=50)


@pytest.mark.parametrize(
    ("name", "moves"),
    [
        ("tic_tac_toe", [0, 3, 1, 4, 2]),  # the first mover completes the top row
        ("connect_four", [0, 1, 0, 1, 0, 1, 0]),  # the first mover stacks four in column 0
    ],
)
def test_first_mover_wins_and_the_losers_last_move_gets_minus_1(
    name: str, moves: list[int]
) -> None:
    first, ts = _play(name, moves)
    second = 1 - first
    movers = [int(np.argmax(t.alive)) for t in ts[:-1]]
    assert movers == [first, second] * (len(moves) // 2) + [first]
    assert all(t.alive.sum() == 1 for t in ts[:-1]) and ts[-1].alive.tolist() == [False] * 2
    assert bool(ts[-1].done) and not any(bool(t.done) for t in ts[:-1])
    rewards = np.array([t.reward for t in ts[1:]])
    assert not rewards[:-1].any()
    assert rewards[-1, first] == 1.0 and rewards[-1, second] == -1.0
    # the credit rule on the played trajectory: the loser's move before the win gets -1
    alive = jnp.array([t.alive for t in ts[:-1]])
    discount = jnp.array([1.0 - t.terminated for t in ts[1:]])
    credit = credit_to_last_action(jnp.asarray(rewards), discount, alive)
    assert float(credit.reward[-2, second]) == -1.0 and float(credit.discount[-2, second]) == 0
    assert float(credit.reward[-1, first]) == 1.0
    assert np.count_nonzero(np.asarray(credit.reward)) == 2


def test_tic_tac_toe_masks_and_observations_from_each_side() -> None:
    first, ts = _play("tic_tac_toe", [4])
    second = 1 - first
    mask = ts[1].action_mask
    assert mask[first].tolist() == [False] * 9  # not its turn
    assert mask[second].tolist() == [True] * 4 + [False] + [True] * 4  # the centre is taken
    # channel 0: the observer's own marks, channel 1: the opponent's
    assert ts[1].obs[first, 1, 1].tolist() == [1.0, 0.0]
    assert ts[1].obs[second, 1, 1].tolist() == [0.0, 1.0]


def test_connect_four_full_column_is_illegal() -> None:
    _, ts = _play("connect_four", [3, 3, 3, 3, 3, 3])
    mover = int(np.argmax(ts[-1].alive))
    assert ts[-1].action_mask[mover].tolist() == [True] * 3 + [False] + [True] * 3


def test_without_pgx_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pgx", None)  # import pgx now fails
    with pytest.raises(ModuleNotFoundError, match=r"jmarl\[games\]"):
        jmarl.make("tic_tac_toe")
