"""Two-player matrix games: one simultaneous move, then the payoffs.

``make_matrix_game(payoffs)`` builds one for any payoff matrix: ``[A0, A1]`` for a zero-sum
game (the row player's payoff; the column player gets its negative) or ``[A0, A1, 2]`` for
each player's own payoff. Agent 0 picks the row, agent 1 the column. Each agent observes its
seat (one-hot), so one shared policy can play both seats. When the players have different
numbers of actions the stacked action space is ``Discrete(max(A0, A1))`` and each agent's
``action_mask`` row allows its own actions only.

Registered (``jmarl.make``): ``rock_paper_scissors`` (0 rock, 1 paper, 2 scissors; win 1,
lose -1), ``matching_pennies`` (the row player wins 1 when the coins match) and
``prisoners_dilemma`` (0 cooperate, 1 defect; Axelrod's payoffs 3/0/5/1).

>>> env = make_rock_paper_scissors()
>>> env.spec.num_agents, env.spec.max_steps, env.spec.action_space.n
(2, 1, 3)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.types import Array, PRNGKey

ROCK_PAPER_SCISSORS = ((0.0, -1.0, 1.0), (1.0, 0.0, -1.0), (-1.0, 1.0, 0.0))
"""Row player's payoff; rows and columns: rock, paper, scissors."""
MATCHING_PENNIES = ((1.0, -1.0), (-1.0, 1.0))
"""Row player's payoff; rows and columns: heads, tails."""
PRISONERS_DILEMMA = (((3.0, 3.0), (0.0, 5.0)), ((5.0, 0.0), (1.0, 1.0)))
"""``[row, column, player]``; actions: cooperate, defect (Axelrod's R=3, S=0, T=5, P=1)."""


def payoff_table(payoffs: Any) -> np.ndarray:
    """``payoffs`` as ``f32[A0, A1, 2]`` (a ``[A0, A1]`` matrix is made zero-sum).

    :raises ValueError: another shape, fewer than one action, or non-finite payoffs.
    """
    table = np.asarray(payoffs, np.float32)
    if table.ndim == 2:
        table = np.stack([table, -table], axis=-1)
    if table.ndim != 3 or table.shape[2] != 2 or min(table.shape[:2]) < 1:
        raise ValueError(
            f"payoffs must have shape [A0, A1] (zero-sum) or [A0, A1, 2], got {np.shape(payoffs)}"
        )
    if not np.all(np.isfinite(table)):
        raise ValueError("payoffs must be finite")
    return table


def make_matrix_game(payoffs: Any, name: str = "matrix_game") -> Env:
    """A one-shot two-player game with the given payoffs (see the module doc).

    :param payoffs: ``[A0, A1]`` row player's payoffs of a zero-sum game, or ``[A0, A1, 2]``
        each player's payoff for every joint action.
    :param name: the spec's name.
    :raises ValueError: bad payoff shape (see :func:`payoff_table`).
    """
    table = payoff_table(payoffs)
    sizes = table.shape[:2]
    num_actions = max(sizes)
    payoff = jnp.asarray(table)
    mask = jnp.asarray(np.arange(num_actions)[None, :] < np.array(sizes)[:, None])
    obs = jnp.eye(2, dtype=jnp.float32)
    not_over = jnp.zeros((2,), bool)

    def observe(reward: Array, end: Array) -> TimeStep:
        return TimeStep(
            obs=obs,
            state=jnp.zeros((1,), jnp.float32),
            reward=reward,
            terminated=jnp.broadcast_to(end, (2,)),
            truncated=not_over,
            done=end,
            alive=jnp.ones((2,), bool),
            action_mask=mask,
        )

    def reset(key: PRNGKey) -> tuple[Array, TimeStep]:
        del key
        return jnp.zeros((), jnp.int32), observe(jnp.zeros((2,), jnp.float32), jnp.asarray(False))

    def step(key: PRNGKey, state: Array, actions: Array) -> tuple[Array, TimeStep]:
        del key
        a0 = jnp.clip(actions[0], 0, sizes[0] - 1)
        a1 = jnp.clip(actions[1], 0, sizes[1] - 1)
        return state, observe(payoff[a0, a1], jnp.asarray(True))

    def chance_outcomes() -> tuple[Array, TimeStep, Array]:
        state, ts = reset(jax.random.key(0))
        expand = lambda x: x[None]
        return expand(state), jax.tree.map(expand, ts), jnp.ones((1,), jnp.float32)

    spec = EnvSpec(
        name=name,
        agent_ids=("player_0", "player_1"),
        observation_space=spaces.Box(0.0, 1.0, (2,)),
        action_space=spaces.Discrete(num_actions),
        state_space=spaces.Box(0.0, 0.0, (1,)),
        max_steps=1,
        agent_action_spaces=(spaces.Discrete(sizes[0]), spaces.Discrete(sizes[1])),
        zero_sum=bool(np.all(table.sum(axis=-1) == 0)),
    )
    return Env(spec, reset, auto_reset(reset, step), step, chance_outcomes)


def make_rock_paper_scissors() -> Env:
    """Rock-paper-scissors: the unique equilibrium is uniform play (NashConv 0); a pure
    strategy has NashConv 2."""
    return make_matrix_game(ROCK_PAPER_SCISSORS, "rock_paper_scissors")


def make_matching_pennies() -> Env:
    """Matching pennies: the row player wins 1 when both coins show the same face."""
    return make_matrix_game(MATCHING_PENNIES, "matching_pennies")


def make_prisoners_dilemma() -> Env:
    """The prisoner's dilemma (general-sum): defecting dominates, mutual cooperation pays more."""
    return make_matrix_game(PRISONERS_DILEMMA, "prisoners_dilemma")
