"""``jmarl.nash_conv`` on poker: OpenSpiel's exact values, a known equilibrium, random tabular
policies against ``pyspiel``, the policy argument's forms, and policies from a Trainer."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as openspiel_policy
from open_spiel.python.algorithms import exploitability

import jmarl
from jmarl.eval.game_tree import build_game_tree
from jmarl.eval.nash_conv import (
    Mixture,
    PolicyValues,
    make_policy_values,
    on_policy_values,
    tree_policy,
)
from jmarl.eval.policies import (
    InfoStates,
    actor_critic_policy,
    first_action_policy,
    greedy_policy,
    information_states,
    tabular_policy,
    uniform_policy,
)

OPENSPIEL = {"kuhn_poker": "kuhn_poker", "leduc_holdem": "leduc_poker"}


@functools.cache
def _values(name: str) -> Callable[..., PolicyValues]:
    return make_policy_values(jmarl.make(name))


@functools.cache
def _infostates(name: str) -> InfoStates:
    return information_states(jmarl.make(name))


@pytest.mark.parametrize(
    ("name", "uniform", "first"),
    [("kuhn_poker", 11 / 12, 2.0), ("leduc_holdem", 4.747222, 2.0)],  # OpenSpiel's tests
)
def test_openspiel_reference_values(name: str, uniform: float, first: float) -> None:
    values = _values(name)
    assert values(uniform_policy).nash_conv == pytest.approx(uniform, abs=1e-6)
    assert values(first_action_policy).nash_conv == pytest.approx(first, abs=1e-6)


def _kuhn_equilibrium(alpha: float) -> np.ndarray:
    """``[K, 2]`` (pass, bet) probabilities of Kuhn's equilibrium family over the information
    states of :func:`information_states`, decoded from their observations."""
    bet = {  # (seat, history) -> probability of betting with J, Q, K
        (0, ""): (alpha, 0.0, 3 * alpha),
        (0, "pb"): (0.0, alpha + 1 / 3, 1.0),
        (1, "p"): (1 / 3, 0.0, 1.0),
        (1, "b"): (0.0, 1 / 3, 1.0),
    }
    rows = []
    for o in np.asarray(_infostates("kuhn_poker").obs):
        bits = o[5:].reshape(3, 2)
        history = "".join("pb"[int(np.argmax(b))] for b in bits if b.any())
        p = bet[int(np.argmax(o[:2])), history][int(np.argmax(o[2:5]))]
        rows.append((1 - p, p))
    return np.array(rows)


def test_kuhn_equilibrium_has_nash_conv_0_and_value_minus_1_18() -> None:
    states = _infostates("kuhn_poker")
    assert len(states.agent) == 12 and np.bincount(states.agent).tolist() == [6, 6]
    for alpha in (0.0, 0.2):
        got = _values("kuhn_poker")(tabular_policy(states.obs, _kuhn_equilibrium(alpha)))
        assert got.nash_conv == pytest.approx(0.0, abs=1e-6)
        np.testing.assert_allclose(got.on_policy, [-1 / 18, 1 / 18], atol=1e-6)
    # a deviation (player 1 never bluffs with J nor calls with Q) is exploitable
    table = _kuhn_equilibrium(0.2)
    table[np.isclose(table[:, 1], 1 / 3) & (states.agent == 1)] = (1.0, 0.0)
    assert _values("kuhn_poker")(tabular_policy(states.obs, table)).nash_conv > 0.01


def _openspiel_nash_conv(name: str, states: InfoStates, table: np.ndarray) -> float:
    """pyspiel's NashConv of the same table, looked up by information-state tensor."""
    game = pyspiel.load_game(OPENSPIEL[name])
    lookup = tabular_policy(states.obs, table)
    policy = openspiel_policy.TabularPolicy(game)
    for row, state in enumerate(policy.states):
        obs = np.asarray([state.information_state_tensor()], np.float32)
        policy.action_probability_array[row] = lookup(obs, None)[0]
    return float(exploitability.nash_conv(game, policy))


@pytest.mark.parametrize("name", OPENSPIEL)
def test_random_tabular_policies_match_pyspiel(name: str) -> None:
    states = _infostates(name)
    rng = np.random.default_rng(0)
    for _ in range(3):
        table = rng.dirichlet(np.ones(states.action_mask.shape[1]), len(states.agent))
        table = np.where(states.action_mask, table, 0.0)
        table /= table.sum(1, keepdims=True)
        ours = _values(name)(tabular_policy(states.obs, table)).nash_conv
        assert ours == pytest.approx(_openspiel_nash_conv(name, states, table), abs=1e-5)


def test_policy_forms_and_renormalisation() -> None:
    values = _values("leduc_holdem")
    # mass on illegal actions is ignored, each row renormalised over the legal ones
    ones = lambda obs, mask: np.ones(mask.shape)
    assert values(ones).nash_conv == pytest.approx(4.747222, abs=1e-6)
    # one callable per agent: the seats may play different policies
    mixed = values((uniform_policy, first_action_policy))
    by_seat = lambda obs, mask: jnp.where(
        obs[:, :1] > 0, uniform_policy(obs, mask), first_action_policy(obs, mask)
    )
    np.testing.assert_allclose(mixed.best_response, values(by_seat).best_response)
    assert not np.allclose(mixed.best_response, values(uniform_policy).best_response)


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        (lambda obs, mask: np.ones((mask.shape[0], 5)), "shape"),
        (lambda obs, mask: -np.ones(mask.shape), ">= 0"),
        (lambda obs, mask: np.zeros(mask.shape), "not all 0"),
        ((uniform_policy,), "sequence of 2"),
    ],
)
def test_bad_policies_are_refused(policy: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _values("kuhn_poker")(policy)


def test_envs_that_cannot_be_enumerated_are_refused() -> None:
    with pytest.raises(ValueError, match="3 agents"):
        jmarl.nash_conv(jmarl.make("simple_spread"), uniform_policy)
    with pytest.raises(ValueError, match="chance_outcomes"):
        jmarl.nash_conv(jmarl.make("two_step"), uniform_policy)


def test_trainer_policies_of_independent_agents() -> None:
    env = jmarl.make("kuhn_poker")
    algo = jmarl.ALGORITHMS["ippo"]
    mapping = jmarl.make_policy_mapping(env.spec, "independent")
    trainer = algo.make(env, algo.config(), 1024, mapping)
    params = trainer.acting_params(trainer.init_learner(jax.random.key(0)))
    states = _infostates("kuhn_poker")
    exact, greedy = (f(trainer, params, env.spec) for f in (actor_critic_policy, greedy_policy))
    for i in range(2):
        rows = states.agent == i
        obs, mask = states.obs[rows], states.action_mask[rows]
        probs = np.asarray(exact[i](obs, mask))
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
        # act(deterministic=True) plays the mode of the same distribution, for each agent
        np.testing.assert_array_equal(greedy[i](obs, mask), np.eye(2)[probs.argmax(-1)])
    assert 0.0 < _values("kuhn_poker")(exact).nash_conv < 4.0


def test_mixture_of_pure_strategies_in_rock_paper_scissors() -> None:
    values = make_policy_values(jmarl.make("rock_paper_scissors"))
    pure = [lambda obs, mask, a=a: np.eye(3)[np.full(mask.shape[0], a)] for a in range(3)]
    assert values(Mixture(pure, [1.0, 1.0, 1.0])).nash_conv == pytest.approx(0.0, abs=1e-12)
    # rock or paper, evenly: the best reply (paper) wins 1/2 per seat
    assert values(Mixture(pure, [2.0, 2.0, 0.0])).nash_conv == pytest.approx(1.0)


def test_kuhn_mixture_equals_brute_force_over_pure_strategies() -> None:
    """A mixture of two pure strategies (weights 0.3, 0.7) against each player's 64 pure
    strategies: best responses and on-policy values, by linearity of the payoff."""
    states, tree = _infostates("kuhn_poker"), build_game_tree(jmarl.make("kuhn_poker"))
    rng = np.random.default_rng(1)
    members = [tabular_policy(states.obs, np.eye(2)[rng.integers(0, 2, 12)]) for _ in range(2)]
    w = np.array([0.3, 0.7])

    def u(p0: Callable, p1: Callable) -> np.ndarray:  # both players' expected returns
        return on_policy_values(tree, tree_policy(tree, (p0, p1)))

    on_policy = sum(w[k] * w[m] * u(members[k], members[m]) for k in range(2) for m in range(2))
    best = []
    for i in range(2):
        rows, values = np.nonzero(states.agent == i)[0], []
        for bits in itertools.product((0, 1), repeat=len(rows)):
            table = np.full((12, 2), 0.5)
            table[rows] = np.eye(2)[list(bits)]
            pure = tabular_policy(states.obs, table)
            pairs = [(pure, m) if i == 0 else (m, pure) for m in members]
            values.append(sum(wm * u(*pair)[i] for wm, pair in zip(w, pairs, strict=True)))
        best.append(max(values))
    got = _values("kuhn_poker")(Mixture(members, w))
    np.testing.assert_allclose(got.on_policy, on_policy, atol=1e-9)
    np.testing.assert_allclose(got.best_response, best, atol=1e-9)
    # averaging the members' probabilities without their reach weights is another strategy
    # for player 0, which may act twice in a game (player 1 acts once: no difference there)
    naive = lambda obs, mask: w[0] * members[0](obs, mask) + w[1] * members[1](obs, mask)
    naive_br = _values("kuhn_poker")(naive).best_response
    assert naive_br[0] == pytest.approx(best[0], abs=1e-9)
    assert naive_br[1] != pytest.approx(best[1], abs=1e-6)
