"""Matrix games (``jmarl.env.games.matrix``) and their exact NashConv."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.cli import main
from jmarl.env.games.matrix import make_matrix_game
from jmarl.eval.nash_conv import make_policy_values
from jmarl.eval.policies import first_action_policy, uniform_policy
from jmarl.testing import check_env

GAMES = ("rock_paper_scissors", "matching_pennies", "prisoners_dilemma")


def _fixed(*probs: tuple[float, ...]) -> jmarl.eval.nash_conv.Policy:
    """Agent-independent policy playing ``probs`` (a shared policy: the seat is ignored)."""
    row = jnp.asarray(probs[0], jnp.float32)
    return lambda obs, mask: jnp.broadcast_to(row, mask.shape)


def _per_seat(p0: tuple[float, ...], p1: tuple[float, ...]) -> jmarl.eval.nash_conv.Policy:
    """One callable that reads the seat from the observation (one-hot)."""
    table = jnp.asarray([p0, p1], jnp.float32)
    return lambda obs, mask: table[jnp.argmax(obs, axis=-1)]


def test_check_env_registered_and_non_square() -> None:
    check_env(jmarl.make("rock_paper_scissors"), jax.random.key(0), num_steps=3)
    check_env(make_matrix_game(np.ones((2, 3))), jax.random.key(1), num_steps=3)


def test_envs_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    turn_based = ("kuhn_poker", "leduc_holdem", "tic_tac_toe", "connect_four")
    assert {*GAMES, *turn_based} <= set(names)


@pytest.mark.parametrize(
    ("name", "actions", "reward"),
    [
        ("rock_paper_scissors", (1, 0), (1.0, -1.0)),  # paper covers rock
        ("rock_paper_scissors", (2, 1), (1.0, -1.0)),  # scissors cut paper
        ("rock_paper_scissors", (2, 0), (-1.0, 1.0)),  # rock blunts scissors
        ("rock_paper_scissors", (2, 2), (0.0, 0.0)),
        ("matching_pennies", (1, 1), (1.0, -1.0)),  # a match: the row player wins
        ("matching_pennies", (0, 1), (-1.0, 1.0)),
        ("prisoners_dilemma", (0, 0), (3.0, 3.0)),  # both cooperate: R
        ("prisoners_dilemma", (0, 1), (0.0, 5.0)),  # sucker S, temptation T
        ("prisoners_dilemma", (1, 1), (1.0, 1.0)),  # both defect: P
    ],
)
def test_payoffs(name: str, actions: tuple[int, int], reward: tuple[float, float]) -> None:
    env = jmarl.make(name)
    state, ts = env.reset(jax.random.key(0))
    assert ts.alive.tolist() == [True, True]
    np.testing.assert_array_equal(ts.obs, np.eye(2))  # each agent sees its seat
    _, ts = env.step(jax.random.key(1), state, jnp.asarray(actions))
    np.testing.assert_array_equal(ts.reward, reward)
    assert bool(ts.done) and ts.terminated.tolist() == [True, True]


def test_non_square_game_masks_each_agents_own_actions() -> None:
    env = make_matrix_game([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], name="two_by_three")
    _, ts = env.reset(jax.random.key(0))
    assert env.spec.action_space.n == 3 and env.spec.name == "two_by_three"
    assert ts.action_mask.tolist() == [[True, True, False], [True, True, True]]
    assert [s.n for s in env.spec.agent_action_spaces] == [2, 3]
    _, ts = env.step(jax.random.key(0), env.reset(jax.random.key(0))[0], jnp.array([1, 2]))
    np.testing.assert_array_equal(ts.reward, [6.0, -6.0])  # [A0, A1] is made zero-sum


@pytest.mark.parametrize("payoffs", [np.zeros(3), np.zeros((2, 2, 3)), [[1.0, np.nan]]])
def test_bad_payoffs_are_refused(payoffs: object) -> None:
    with pytest.raises(ValueError, match="payoffs"):
        make_matrix_game(payoffs)


@pytest.mark.parametrize("name", ["rock_paper_scissors", "matching_pennies"])
def test_nash_conv_uniform_is_0_and_pure_is_2(name: str) -> None:
    env = jmarl.make(name)
    assert jmarl.nash_conv(env, uniform_policy) == pytest.approx(0.0, abs=1e-9)
    # both always play action 0: each could switch to the action that beats it and win 1
    assert jmarl.nash_conv(env, first_action_policy) == pytest.approx(2.0, abs=1e-9)


def test_nash_conv_of_mixed_strategies_by_hand() -> None:
    values = make_policy_values(jmarl.make("rock_paper_scissors"))
    # both play rock 1/2, paper 1/2. Against it: rock -1/2, paper +1/2, scissors 0
    half = values(_fixed((0.5, 0.5, 0.0)))
    np.testing.assert_allclose(half.best_response, [0.5, 0.5])
    np.testing.assert_allclose(half.on_policy, [0.0, 0.0])
    assert half.nash_conv == pytest.approx(1.0)
    # row plays rock, column plays paper: row gets -1; row's best reply (scissors) +1,
    # column is already best-replying (+1): NashConv = (1 - -1) + (1 - 1) = 2
    rp = values(_per_seat((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))
    np.testing.assert_allclose(rp.on_policy, [-1.0, 1.0])
    np.testing.assert_allclose(rp.best_response, [1.0, 1.0])
    # the same with one callable per agent
    seq = values((_fixed((1.0, 0.0, 0.0)), _fixed((0.0, 1.0, 0.0))))
    np.testing.assert_allclose(seq.best_response, rp.best_response)


def test_nash_conv_general_sum_prisoners_dilemma() -> None:
    values = make_policy_values(jmarl.make("prisoners_dilemma"))
    # uniform: each gets (3 + 0 + 5 + 1) / 4 = 2.25; defecting against it (5 + 1) / 2 = 3
    uniform = values(uniform_policy)
    np.testing.assert_allclose(uniform.on_policy, [2.25, 2.25])
    np.testing.assert_allclose(uniform.best_response, [3.0, 3.0])
    # mutual defection is the equilibrium; mutual cooperation is not (5 - 3 each)
    assert values(_fixed((0.0, 1.0))).nash_conv == pytest.approx(0.0)
    assert values(first_action_policy).nash_conv == pytest.approx(4.0)
