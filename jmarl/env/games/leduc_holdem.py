"""Leduc hold'em (Southey et al. 2005) with OpenSpiel's rules (``leduc_poker``), action order
and information-state tensors.

Six cards, two suits of J < Q < K (card ``c`` has rank ``c // 2``). Both players ante 1 and
get one private card; one public card is revealed after the first betting round. Player 0
acts first in both rounds. Actions: ``0`` fold (legal only when facing a bet), ``1`` call
(or check), ``2`` raise (2 chips in round 1, 4 in round 2; at most 2 raises per round). A
round ends when both have checked or a raise has been called. At the showdown a pair with
the public card wins, otherwise the higher rank; equal ranks split the pot. Rewards (chips
won or lost) come at the last step. An illegal action is played as a call.

Turn-based in the jmarl protocol: only the player to act is ``alive``. Each player observes
its full information state, laid out as OpenSpiel's ``information_state_tensor`` (30
floats)::

    [seat one-hot (2) | private card one-hot (6) | public card one-hot (6, zeros in round 1)
     | round r, bet k (k < 4): (call, raise) bits, for r = 1, 2]

(Pgx's Leduc observation, cards plus chip counts, says neither who acted first nor the
betting sequence.) The deal (private cards and the public card, one of 120 ordered triples,
uniformly) is drawn from the reset key; the public card stays hidden until round 2, which is
the same game as dealing it then. ``env.chance_outcomes`` lists all 120 deals.

>>> env = make_leduc_holdem()
>>> env.spec.observation_space.shape, env.spec.action_space.n, env.spec.max_steps
((30,), 3, 8)
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

FOLD, CALL, RAISE = 0, 1, 2
NUM_CARDS = 6
MAX_BETS = 4
"""Actions per round at most (check, raise, raise, call)."""
MAX_RAISES = 2
RAISE_AMOUNTS = (2, 4)
OBS_SIZE = 2 + 2 * NUM_CARDS + 2 * MAX_BETS * 2
DEALS = np.array(list(itertools.permutations(range(NUM_CARDS), 3)), np.int32)
"""The 120 deals ``(card of player 0, card of player 1, public card)``."""


class LeducState(NamedTuple):
    """``cards`` ``i32[3]`` (player 0's, player 1's, public); ``bets`` ``i32[2, 4]`` each
    round's actions (``-1`` not played); ``round`` ``i32[]`` 0 or 1; ``player`` ``i32[]`` to
    act; ``raises`` and ``calls`` ``i32[]`` in this round since the last raise (calls);
    ``stakes`` ``i32[]`` what each must have put in to stay; ``put_in`` ``i32[2]`` chips each
    has put in the pot."""

    cards: Array
    bets: Array
    round: Array
    player: Array
    raises: Array
    calls: Array
    stakes: Array
    put_in: Array


def leduc_observation(state: LeducState) -> Array:
    """``f32[2, 30]``: each player's information-state tensor (see the module doc)."""
    own = jax.nn.one_hot(state.cards[:2], NUM_CARDS)
    public = jax.nn.one_hot(state.cards[2], NUM_CARDS) * (state.round == 1)
    # fold (0) and "not played" (-1) shift out of range: no bit, as in OpenSpiel
    bits = jax.nn.one_hot(state.bets - 1, 2).reshape(-1)
    shared = jnp.broadcast_to(jnp.concatenate([public, bits]), (2, OBS_SIZE - 2 - NUM_CARDS))
    return jnp.concatenate([jnp.eye(2), own, shared], axis=1)


def leduc_legal(state: LeducState) -> Array:
    """``bool[3]``: fold only when facing a bet, call always, raise below 2 raises."""
    facing = state.stakes > state.put_in[state.player]
    return jnp.stack([facing, jnp.asarray(True), state.raises < MAX_RAISES])


def hand_strength(private: Array, public: Array) -> Array:
    """A pair beats any high card; otherwise the higher rank, then the lower, decides."""
    r, q = private // 2, public // 2
    return jnp.where(r == q, 100 + r, jnp.maximum(r, q) * 10 + jnp.minimum(r, q))


def leduc_rewards(state: LeducState, folder: Array) -> Array:
    """``f32[2]``: each player's share of the pot minus what it put in (``folder`` ``-1``:
    showdown)."""
    strength = hand_strength(state.cards[:2], state.cards[2])
    showdown_win = strength == jnp.max(strength)
    winners = jnp.where(folder >= 0, jnp.arange(2) != folder, showdown_win).astype(jnp.float32)
    put_in = state.put_in.astype(jnp.float32)
    return jnp.sum(put_in) * winners / jnp.sum(winners) - put_in


def _play(state: LeducState, action: Array) -> tuple[LeducState, Array, Array]:
    """The action's effect on the bets; returns the new state, ``ready`` (the round is over)
    and ``fold``."""
    p, r = state.player, state.round
    fold, raise_ = action == FOLD, action == RAISE
    stakes = state.stakes + raise_ * jnp.asarray(RAISE_AMOUNTS)[r]
    put_in = state.put_in.at[p].set(jnp.where(fold, state.put_in[p], stakes))
    raises = state.raises + raise_
    calls = jnp.where(raise_, 0, state.calls + (action == CALL))
    count = jnp.sum(state.bets[r] >= 0)
    bets = state.bets.at[r, count].set(action)
    ready = ~fold & (((raises == 0) & (calls == 2)) | ((raises > 0) & (calls == 1)))
    new = state._replace(bets=bets, raises=raises, calls=calls, stakes=stakes, put_in=put_in)
    return new, ready, fold


def leduc_step(key: PRNGKey, state: LeducState, actions: Array) -> tuple[LeducState, TimeStep]:
    """Plays the action of the player to act (``actions[player]``; illegal actions are
    calls); the other player's entry is ignored. No auto-reset."""
    del key
    legal = leduc_legal(state)
    action = jnp.asarray(actions[state.player], jnp.int32)
    known = (action >= 0) & (action <= RAISE)
    action = jnp.where(known & legal[jnp.clip(action, 0, RAISE)], action, CALL)
    played, ready, fold = _play(state, action)
    end = fold | (ready & (state.round == 1))
    next_round = ready & (state.round == 0)
    nxt = played._replace(
        round=state.round + next_round,
        player=jnp.where(next_round, 0, 1 - state.player),
        raises=jnp.where(next_round, 0, played.raises),
        calls=jnp.where(next_round, 0, played.calls),
    )
    reward = jnp.where(end, leduc_rewards(nxt, jnp.where(fold, state.player, -1)), 0.0)
    return nxt, turn_timestep(leduc_observation(nxt), nxt.player, leduc_legal(nxt), reward, end)


def leduc_start(cards: Array) -> tuple[LeducState, TimeStep]:
    """The first step of the game with ``cards`` ``i32[3]`` dealt."""
    zero = jnp.zeros((), jnp.int32)
    state = LeducState(
        cards=cards,
        bets=jnp.full((2, MAX_BETS), -1, jnp.int32),
        round=zero,
        player=zero,
        raises=zero,
        calls=zero,
        stakes=jnp.ones((), jnp.int32),
        put_in=jnp.ones((2,), jnp.int32),
    )
    obs, legal = leduc_observation(state), leduc_legal(state)
    return state, turn_timestep(obs, state.player, legal, jnp.zeros((2,)), False)


def make_leduc_holdem() -> Env:
    """Builds two-player Leduc hold'em (see the module doc)."""
    reset, chance_outcomes = uniform_chance(DEALS, leduc_start)
    spec = EnvSpec(
        name="leduc_holdem",
        agent_ids=("player_0", "player_1"),
        observation_space=spaces.Box(0.0, 1.0, (OBS_SIZE,)),
        action_space=spaces.Discrete(3),
        state_space=spaces.Box(0.0, 1.0, (2 * OBS_SIZE,)),
        max_steps=2 * MAX_BETS,
        turn_based=True,
        zero_sum=True,
    )
    return Env(spec, reset, auto_reset(reset, leduc_step), leduc_step, chance_outcomes)
