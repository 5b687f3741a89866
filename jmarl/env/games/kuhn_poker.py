"""Kuhn poker (Kuhn 1950) with OpenSpiel's rules, action order and information-state tensors.

Three cards J < Q < K (``0, 1, 2``). Both players ante 1 and get one card each; player 0
acts first. Actions: ``0`` pass (check, or fold when facing a bet), ``1`` bet (bet 1 chip, or
call). Pass-pass, bet-bet and pass-bet-bet go to a showdown (the higher card takes the pot);
bet-pass and pass-bet-pass are folds (the bettor takes the pot). The winner's reward is what
the loser put in the pot (1 or 2), the loser's its negative, both at the last step.

Turn-based in the jmarl protocol: only the player to act is ``alive``. Each player observes
its full information state, laid out as OpenSpiel's ``information_state_tensor`` (11 floats)::

    [seat one-hot (2) | own card one-hot (3) | action k of the game: (pass, bet) bits, k < 3]

so that no two information states look alike (Pgx's Kuhn observation, card plus chips,
confuses "first to act" with "opponent passed" and both seats facing a bet). The deal (one of
the 6 ordered card pairs, uniformly) is drawn from the reset key; ``env.chance_outcomes``
lists all six for :func:`jmarl.nash_conv`.

>>> env = make_kuhn_poker()
>>> env.spec.observation_space.shape, env.spec.action_space.n, env.spec.max_steps
((11,), 2, 3)
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.env.games.common import turn_timestep, uniform_chance
from jmarl.types import Array, PRNGKey

PASS, BET = 0, 1
NUM_CARDS = 3
MAX_ACTIONS = 3
OBS_SIZE = 2 + NUM_CARDS + 2 * MAX_ACTIONS
DEALS = np.array(list(itertools.permutations(range(NUM_CARDS), 2)), np.int32)
"""The 6 deals ``(card of player 0, card of player 1)``."""


class KuhnState(NamedTuple):
    """``cards`` ``i32[2]`` each player's card; ``history`` ``i32[3]`` the actions so far
    (``-1`` not played yet); ``t`` ``i32[]`` how many have been played."""

    cards: Array
    history: Array
    t: Array


def kuhn_observation(state: KuhnState) -> Array:
    """``f32[2, 11]``: each player's information-state tensor (see the module doc)."""
    played = jnp.arange(MAX_ACTIONS) < state.t
    bits = jax.nn.one_hot(state.history, 2) * played[:, None]
    public = jnp.broadcast_to(bits.reshape(-1), (2, 2 * MAX_ACTIONS))
    own = jax.nn.one_hot(state.cards, NUM_CARDS)
    return jnp.concatenate([jnp.eye(2), own, public], axis=1)


def kuhn_outcome(history: Array, t: Array, cards: Array) -> tuple[Array, Array]:
    """Whether the game is over after ``t`` actions, and the rewards ``f32[2]`` (0 if not)."""
    played = jnp.arange(MAX_ACTIONS) < t
    bets = (history == BET) & played
    put_in = 1 + jnp.stack([bets[0] | bets[2], bets[1]]).astype(jnp.float32)
    pass_bet = (history[0] == PASS) & (history[1] == BET)
    end = (t == 3) | ((t == 2) & ~pass_bet)
    last = history[jnp.maximum(t - 1, 0)]
    fold = (last == PASS) & jnp.any(bets)
    folder = (t - 1) % 2
    winner = jnp.where(fold, 1 - folder, jnp.argmax(cards))
    lost = put_in[1 - winner]
    reward = jnp.where(jnp.arange(2) == winner, lost, -lost)
    return end, jnp.where(end, reward, 0.0)


def kuhn_start(cards: Array) -> tuple[KuhnState, TimeStep]:
    """The first step of the game with ``cards`` ``i32[2]`` dealt."""
    state = KuhnState(cards, jnp.full((MAX_ACTIONS,), -1, jnp.int32), jnp.zeros((), jnp.int32))
    ts = turn_timestep(
        kuhn_observation(state), state.t % 2, jnp.ones((2,), bool), jnp.zeros((2,)), False
    )
    return state, ts


def kuhn_step(key: PRNGKey, state: KuhnState, actions: Array) -> tuple[KuhnState, TimeStep]:
    """Plays the action of the player to act (``actions[t % 2]``; any value but ``1`` is a
    pass); the other player's entry is ignored. No auto-reset."""
    del key
    player = state.t % 2
    action = jnp.where(actions[player] == BET, BET, PASS).astype(jnp.int32)
    history = state.history.at[state.t].set(action)
    nxt = KuhnState(state.cards, history, state.t + 1)
    end, reward = kuhn_outcome(history, nxt.t, state.cards)
    ts = turn_timestep(kuhn_observation(nxt), nxt.t % 2, jnp.ones((2,), bool), reward, end)
    return nxt, ts


def make_kuhn_poker() -> Env:
    """Builds two-player Kuhn poker (see the module doc)."""
    reset, chance_outcomes = uniform_chance(DEALS, kuhn_start)
    spec = EnvSpec(
        name="kuhn_poker",
        agent_ids=("player_0", "player_1"),
        observation_space=spaces.Box(0.0, 1.0, (OBS_SIZE,)),
        action_space=spaces.Discrete(2),
        state_space=spaces.Box(0.0, 1.0, (2 * OBS_SIZE,)),
        max_steps=MAX_ACTIONS,
        turn_based=True,
        zero_sum=True,
    )
    return Env(spec, reset, auto_reset(reset, kuhn_step), kuhn_step, chance_outcomes)
