"""Perfect-information board games from Pgx (``tic_tac_toe``, ``connect_four``) in the jmarl
protocol. Needs ``pgx==2.6.0`` (``pip install 'jmarl[games]'``), imported only when such an env
is made.

Why wrap rather than rewrite: Pgx is a tested, jittable implementation, and in these games
its observation (the board from the observer's side: own stones, then the opponent's) is the
full state, so nothing is lost. (The poker games are written anew in
:mod:`jmarl.env.games.kuhn_poker` / :mod:`~jmarl.env.games.leduc_holdem`: Pgx's poker
observations alias information states, its first player is random and its action order is
not OpenSpiel's.)

The agents are Pgx's players 0 and 1; Pgx draws who moves first from the reset key (so both
agents play both sides). Only the player to move is ``alive``; its ``action_mask`` row holds
the legal moves, the other row is all False. Each agent observes the board from its own side
(``f32[H, W, 2]``); the global state is player 0's view plus the one-hot of the player to
move. Rewards (+1 win, -1 loss, 0 draw) come at the last move, to both players; an illegal
move loses the game at once (Pgx's rule).

>>> env = make_tic_tac_toe()
>>> env.spec.observation_space.shape, env.spec.action_space.n, env.spec.max_steps
((3, 3, 2), 9, 9)
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import jax
import jax.numpy as jnp

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.types import Array, PRNGKey

PGX_VERSION = "2.6.0"
MAX_MOVES = {"tic_tac_toe": 9, "connect_four": 42}


def _load_pgx(game: str) -> Any:
    """``pgx.make(game)``; a clear error when Pgx is not installed."""
    try:
        pgx = importlib.import_module("pgx")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"env {game!r} wraps Pgx: pip install 'jmarl[games]' (pgx=={PGX_VERSION})"
        ) from None
    return pgx.make(game)


def make_pgx_game(game: str) -> Env:
    """The two-player Pgx game ``game`` (a key of ``MAX_MOVES``) as a jmarl env.

    :raises ValueError: an unsupported game.
    """
    if game not in MAX_MOVES:
        raise ValueError(f"unsupported Pgx game {game!r}; supported: {sorted(MAX_MOVES)}")
    pgx_env = _load_pgx(game)
    shape = tuple(pgx_env.observation_shape)
    num_actions = int(pgx_env.num_actions)

    def observe(state: Any) -> TimeStep:
        # Pgx's private _observe: its public observe(state, player_id) warns (deprecated)
        obs = jnp.stack([pgx_env._observe(state, jnp.int32(i)) for i in range(2)])
        end = state.terminated | state.truncated
        alive = (jnp.arange(2) == state.current_player) & ~end
        return TimeStep(
            obs=obs.astype(jnp.float32),
            state=jnp.concatenate(
                [obs[0].reshape(-1).astype(jnp.float32), jax.nn.one_hot(state.current_player, 2)]
            ),
            reward=state.rewards.astype(jnp.float32),
            terminated=jnp.broadcast_to(state.terminated, (2,)),
            truncated=jnp.broadcast_to(state.truncated & ~state.terminated, (2,)),
            done=end,
            alive=alive,
            action_mask=alive[:, None] & state.legal_action_mask[None, :],
        )

    def reset(key: PRNGKey) -> tuple[Any, TimeStep]:
        state = pgx_env.init(key)
        return state, observe(state)

    def step(key: PRNGKey, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        """Plays ``actions[current_player]``; the other entry is ignored. No auto-reset."""
        action = jnp.asarray(actions, jnp.int32)[state.current_player]
        state = pgx_env.step(state, action, key)
        return state, observe(state)

    spec = EnvSpec(
        name=game,
        agent_ids=("player_0", "player_1"),
        observation_space=spaces.Box(0.0, 1.0, shape),
        action_space=spaces.Discrete(num_actions),
        state_space=spaces.Box(0.0, 1.0, (math.prod(shape) + 2,)),
        max_steps=MAX_MOVES[game],
        turn_based=True,
        zero_sum=True,
    )
    return Env(spec, reset, auto_reset(reset, step), step)


def make_tic_tac_toe() -> Env:
    """Tic-tac-toe (Pgx): 9 actions, the cells row by row."""
    return make_pgx_game("tic_tac_toe")


def make_connect_four() -> Env:
    """Connect four (Pgx): 7 actions, the columns; 6 x 7 board."""
    return make_pgx_game("connect_four")
