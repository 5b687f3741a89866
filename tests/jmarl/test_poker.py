"""Kuhn poker and Leduc hold'em: rules by hand, observations that are full information states,
and every history checked against OpenSpiel (``pyspiel``, a test-only dependency)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pyspiel
import pytest

import jmarl
from jmarl.env.games import kuhn_poker, leduc_holdem
from jmarl.env.games.kuhn_poker import BET, PASS, kuhn_start, kuhn_step
from jmarl.env.games.leduc_holdem import CALL, FOLD, RAISE, leduc_start, leduc_step
from jmarl.eval.game_tree import GameTree, build_game_tree
from jmarl.testing import check_env

GAMES = {"kuhn_poker": "kuhn_poker", "leduc_holdem": "leduc_poker"}  # jmarl -> OpenSpiel


@functools.cache
def _tree(name: str) -> GameTree:
    return build_game_tree(jmarl.make(name))


def _play(start, step, cards, actions):  # type: ignore[no-untyped-def]
    """Plays ``actions`` (the acting player's, in turn) from the deal ``cards``; returns the
    TimeSteps, first one included."""
    state, ts = jax.jit(start)(jnp.asarray(cards, jnp.int32))
    out = [ts]
    for a in actions:
        state, ts = jax.jit(step)(jax.random.key(0), state, jnp.array([a, a]))
        out.append(ts)
    return out


@pytest.mark.parametrize("name", GAMES)
def test_check_env(name: str) -> None:
    check_env(jmarl.make(name), jax.random.key(0), num_steps=20)


def test_kuhn_showdown_after_pass_bet_call_by_hand() -> None:
    # player 0 holds J (0), player 1 holds K (2): pass, bet, call -> K wins the pot of 2 + 2
    ts = _play(kuhn_start, kuhn_step, [0, 2], [PASS, BET, BET])
    alive = [[True, False], [False, True], [True, False], [False, False]]  # none at the end
    assert [t.alive.tolist() for t in ts] == alive
    assert [t.reward.tolist() for t in ts] == [[0, 0], [0, 0], [0, 0], [-2.0, 2.0]]
    assert [bool(t.done) for t in ts] == [False, False, False, True]
    # only the acting player's mask row has legal moves
    assert ts[1].action_mask.tolist() == [[False, False], [True, True]]
    # player 1's view after pass, bet: seat 1, K, history (pass: 10, bet: 01, -: 00)
    np.testing.assert_array_equal(ts[2].obs[1], [0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(ts[2].obs[0], [1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0])


@pytest.mark.parametrize(
    ("cards", "actions", "reward"),
    [
        ([0, 2], [BET, PASS], [1.0, -1.0]),  # player 1 folds to a bluff: wins its ante
        ([2, 0], [PASS, BET, PASS], [-1.0, 1.0]),  # player 0 folds
        ([2, 1], [PASS, PASS], [1.0, -1.0]),  # showdown for the antes
        ([1, 2], [BET, BET], [-2.0, 2.0]),  # showdown after bet, call
    ],
)
def test_kuhn_outcomes_by_hand(cards: list[int], actions: list[int], reward: list[float]) -> None:
    ts = _play(kuhn_start, kuhn_step, cards, actions)
    assert bool(ts[-1].done) and not any(bool(t.done) for t in ts[:-1])
    np.testing.assert_array_equal(ts[-1].reward, reward)


def test_leduc_raises_rounds_and_pair_by_hand() -> None:
    # J (0) vs Q (3), public Q (2). Round 1: raise (+2), re-raise, call: 5 chips each.
    # Round 2: check, raise (+4), call: 9 each; player 1's pair of queens takes the pot.
    ts = _play(leduc_start, leduc_step, [0, 3, 2], [RAISE, RAISE, CALL, CALL, RAISE, CALL])
    masks = [t.action_mask[int(np.argmax(t.alive))].tolist() for t in ts[:-1]]
    assert masks[0] == [False, True, True]  # no fold when not facing a bet
    assert masks[1] == [True, True, True]
    assert masks[2] == [True, True, False]  # two raises: no more this round
    assert masks[3] == [False, True, True]  # round 2, player 0 first, raises reset
    assert [int(np.argmax(t.alive)) for t in ts[:-1]] == [0, 1, 0, 0, 1, 0]
    assert [t.reward.tolist() for t in ts[:-1]] == [[0.0, 0.0]] * 6
    np.testing.assert_array_equal(ts[-1].reward, [-9.0, 9.0])
    # the public card shows from round 2 on; the bets are (call, raise) bits per action
    pub = slice(8, 14)
    assert ts[2].obs[0, pub].tolist() == [0] * 6 and ts[3].obs[0, pub].tolist()[2] == 1
    bets = np.asarray(ts[5].obs[1, 14:]).reshape(2, 4, 2)
    np.testing.assert_array_equal(bets[0], [[0, 1], [0, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(bets[1], [[1, 0], [0, 1], [0, 0], [0, 0]])


@pytest.mark.parametrize(
    ("cards", "actions", "reward"),
    [
        ([0, 3, 2], [RAISE, FOLD], [1.0, -1.0]),  # player 1 folds its ante
        ([0, 3, 2], [CALL, RAISE, FOLD], [-1.0, 1.0]),
        ([0, 1, 4], [CALL, CALL, CALL, CALL], [0.0, 0.0]),  # J vs J: split pot
        ([0, 2, 5], [CALL, CALL, CALL, CALL], [-1.0, 1.0]),  # K high: Q beats J
        ([4, 2, 0], [CALL, RAISE, CALL, RAISE, CALL], [7.0, -7.0]),  # K beats Q, 1 + 2 + 4
        ([0, 2, 5], [FOLD, CALL, CALL, CALL], [-1.0, 1.0]),  # illegal fold is a check
    ],
)
def test_leduc_outcomes_by_hand(cards: list[int], actions: list[int], reward: list[float]) -> None:
    ts = _play(leduc_start, leduc_step, cards, actions)
    assert bool(ts[-1].done) and not any(bool(t.done) for t in ts[:-1])
    np.testing.assert_array_equal(ts[-1].reward, reward)


def _information_state(name: str, tree: GameTree, depth: int, rows: np.ndarray, player: int):  # type: ignore[no-untyped-def]
    """What ``player`` knows at nodes ``rows``, from the env state (not the observation):
    seat, own card, the public card once shown, every action so far."""
    s = tree.levels[depth].state
    keys = []
    for j in rows:
        if name == "kuhn_poker":
            keys.append((player, int(s.cards[j, player]), tuple(s.history[j, : s.t[j]])))
        else:
            public = int(s.cards[j, 2]) if s.round[j] == 1 else -1
            keys.append((player, int(s.cards[j, player]), public, tuple(s.bets[j].ravel())))
    return keys


@pytest.mark.parametrize(("name", "count"), [("kuhn_poker", 12), ("leduc_holdem", 936)])
def test_no_two_information_states_share_an_observation(name: str, count: int) -> None:
    tree = _tree(name)
    pairs = set()
    for depth, level in enumerate(tree.levels):
        for i in range(2):
            rows = np.nonzero(level.alive[:, i])[0]
            infos = _information_state(name, tree, depth, rows, i)
            obs = [tuple(np.asarray(level.obs[j, i]).tolist()) for j in rows]
            pairs.update(zip(infos, obs, strict=True))
    infos, observations = {p[0] for p in pairs}, {p[1] for p in pairs}
    # one observation per information state and one information state per observation
    assert len(infos) == len(observations) == len(pairs) == count  # OpenSpiel's counts


def _histories(tree: GameTree) -> list[list[tuple[int, tuple[int, ...]]]]:
    """Per level, per node: (chance outcome, the acting players' actions so far)."""
    paths = [[(int(c), ()) for c in tree.levels[0].parent]]
    for d in range(1, len(tree.levels)):
        above, level = tree.levels[d - 1], tree.levels[d]
        actor = np.argmax(above.alive, axis=1)[level.parent]
        moves = level.action[np.arange(len(actor)), actor]
        paths.append(
            [
                (c, (*h, int(m)))
                for (c, h), m in zip((paths[-1][p] for p in level.parent), moves, strict=True)
            ]
        )
    return paths


@pytest.mark.parametrize("name", GAMES)
def test_every_history_matches_openspiel(name: str) -> None:
    """Legal actions, observations (``information_state_tensor``) and returns of every
    history of the game equal OpenSpiel's."""
    game, tree = pyspiel.load_game(GAMES[name]), _tree(name)
    deals = {"kuhn_poker": kuhn_poker.DEALS, "leduc_holdem": leduc_holdem.DEALS}[name]
    returns = [np.zeros((len(tree.levels[0].terminal), 2))]
    for d, (level, paths) in enumerate(zip(tree.levels, _histories(tree), strict=True)):
        if d:
            returns.append(returns[-1][level.parent] + level.reward)
        for j, (outcome, history) in enumerate(paths):
            cards = [int(c) for c in deals[outcome]]
            state = game.new_initial_state()
            state.apply_action(cards[0])
            state.apply_action(cards[1])
            for a in history:
                state.apply_action(a)
                if state.is_chance_node():  # Leduc's public card
                    state.apply_action(cards[2])
            if level.terminal[j]:
                assert state.is_terminal(), (name, cards, history)
                np.testing.assert_allclose(returns[-1][j], state.returns(), err_msg=str(history))
                continue
            p = state.current_player()
            assert level.alive[j].tolist() == [p == 0, p == 1], (cards, history)
            assert np.nonzero(level.mask[j, p])[0].tolist() == state.legal_actions()
            for i in range(2):
                np.testing.assert_array_equal(
                    level.obs[j, i], state.information_state_tensor(i), err_msg=str(history)
                )


def test_check_env_catches_a_reset_outside_the_chance_outcomes() -> None:
    env = jmarl.make("kuhn_poker")
    odd_deal = lambda key: kuhn_start(jnp.array([1, 1], jnp.int32))  # not a deal
    bad = env._replace(reset=odd_deal)
    with pytest.raises(AssertionError, match=r"not among env\.chance_outcomes"):
        check_env(bad, jax.random.key(0), num_steps=4)
    skewed = lambda: (*env.chance_outcomes()[:2], jnp.full((6,), 0.5))  # type: ignore[misc]
    with pytest.raises(AssertionError, match="sum 1"):
        check_env(env._replace(chance_outcomes=skewed), jax.random.key(0), num_steps=4)
