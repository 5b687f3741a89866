"""Reward credit in turn-based games (``jmarl.ops.turns``): hand-built trajectories, then a
Kuhn poker rollout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.ops.returns import gae_advantages
from jmarl.ops.turns import credit_to_last_action, turn_gae_advantages
from jmarl.testing.env_checks import sample_actions

A, B = (True, False), (False, True)  # alive rows: player 0 acts, player 1 acts


def _credit(reward: list, discount: list, alive: list) -> tuple[list, list, list]:
    out = credit_to_last_action(jnp.array(reward), jnp.array(discount), jnp.array(alive))
    return out.reward.tolist(), out.discount.tolist(), out.next_step.tolist()


def test_the_losers_last_move_receives_minus_1() -> None:
    # tic-tac-toe: 0, 1, 0, 1, then player 0 completes a line at step 4 (both terminate)
    reward = [[0, 0]] * 4 + [[1, -1]]
    discount = [[1, 1]] * 4 + [[0, 0]]
    got_r, got_d, got_next = _credit(reward, discount, [A, B, A, B, A])
    assert got_r == [[0, 0], [0, 0], [0, 0], [0, -1], [1, 0]]  # the loser's move at step 3
    assert got_d == [[1, 1], [1, 1], [1, 1], [1, 0], [0, 1]]  # both last moves end the game
    assert [got_next[t][0] for t in (0, 2)] == [2, 4] and got_next[1][1] == 3


def test_rewards_between_own_actions_are_summed() -> None:
    # player 1 is penalised 0.5 on player 0's step 2, then loses 1 on step 3 (ends there)
    reward = [[0, 0], [0, 0], [0, -0.5], [1, -1]]
    discount = [[1, 1], [1, 1], [1, 1], [0, 0]]
    got_r, got_d, _ = _credit(reward, discount, [A, B, A, A])
    # player 1's only move (step 1) collects -0.5 - 1 (undiscounted); player 0's moves
    # each get their own step's reward
    assert got_r == [[0, 0], [0, -1.5], [0, 0], [1, 0]]
    assert got_d == [[1, 1], [1, 0], [1, 1], [0, 1]]


def test_episode_ends_cut_the_credit_and_the_window_end_bootstraps() -> None:
    # episode 1: steps 0-1 (player 1 wins at step 1); episode 2 (auto-reset): steps 2-5, where
    # player 1 is penalised 0.5 at step 2, before its first move of episode 2
    reward = [[0, 0], [-1, 1], [0, -0.5], [0, 0], [0, 0], [0, 0]]
    discount = [[1, 1], [0, 0], [1, 1], [1, 1], [1, 1], [1, 1]]
    got_r, got_d, got_next = _credit(reward, discount, [A, B, A, B, A, B])
    assert got_r == [[-1, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]]  # no leak across games
    assert got_d[0][0] == 0 and got_d[2][0] == 1
    # the last moves of the window continue beyond it: next step T = 6, discount 1
    assert got_next[4][0] == 6 and got_next[5][1] == 6 and got_d[4][0] == got_d[5][1] == 1


def test_rewards_before_the_first_own_action_are_dropped() -> None:
    # player 1's -1 at step 0 belongs to a move of an earlier trajectory
    got_r, _, _ = _credit([[1, -1], [0, 0]], [[1, 1], [1, 1]], [A, B])
    assert got_r == [[1, 0], [0, 0]]


def test_batch_dimensions_and_shape_errors() -> None:
    key = jax.random.key(0)
    reward = jax.random.normal(key, (7, 3, 2))
    discount = (jax.random.uniform(jax.random.fold_in(key, 1), (7, 3, 2)) > 0.2).astype(float)
    alive = jax.random.bernoulli(jax.random.fold_in(key, 2), 0.5, (7, 3, 2))
    batched = credit_to_last_action(reward, discount, alive)
    for e in range(3):
        one = credit_to_last_action(reward[:, e], discount[:, e], alive[:, e])
        for got, want in zip(batched, one, strict=True):
            np.testing.assert_allclose(got[:, e], want, rtol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        credit_to_last_action(reward, discount[:, 0], alive)


def test_kuhn_rollout_every_reward_lands_on_an_own_move() -> None:
    env = jmarl.make("kuhn_poker")

    def step(carry, key):  # type: ignore[no-untyped-def]
        state, ts = carry
        actions = sample_actions(jax.random.fold_in(key, 0), env.spec, ts.action_mask)
        state, nxt = env.step(key, state, actions)
        ended = nxt.terminated | nxt.done
        return (state, nxt), (nxt.reward, 1.0 - ended, ts.alive, nxt.done)

    first = env.reset(jax.random.key(1))
    _, (reward, discount, alive, done) = jax.lax.scan(
        step, first, jax.random.split(jax.random.key(2), 64)
    )
    got = credit_to_last_action(reward, discount, alive)
    assert int(done.sum()) >= 15 and float(jnp.abs(reward).sum()) > 0
    # the window starts at an episode start and every reward comes at an end, after both
    # players moved: each agent's credited total equals its total return
    np.testing.assert_allclose(got.reward.sum(0), reward.sum(0))
    assert not np.any(np.asarray(got.reward)[~np.asarray(alive)])
    # a credited transition ends (discount 0) exactly at each agent's last move of a game
    ends = np.asarray(got.discount == 0)
    assert ends.sum() == 2 * int(done.sum()) and np.all(np.asarray(alive)[ends])


def test_turn_gae_follows_each_agents_own_moves() -> None:
    # 0 moves, 1 moves, 0 moves and wins; gamma 0.9, lambda 0.5, hand-computed per agent
    reward = jnp.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    discount = jnp.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    alive = jnp.array([A, B, A])
    values = jnp.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]])
    adv = np.asarray(turn_gae_advantages(reward, discount, alive, values, 0.9, 0.5))
    a2 = 1.0 - 0.5  # player 0's winning move ends the game
    a0 = (0.0 + 0.9 * 0.5 - 0.1) + 0.9 * 0.5 * a2  # its first move bootstraps from step 2
    a1 = -1.0 - 0.4  # the loser's move at step 1 receives the -1 of step 2
    np.testing.assert_allclose(adv, [[a0, 0.0], [0.0, a1], [a2, 0.0]], rtol=1e-6)


def test_turn_gae_bootstraps_past_the_window_and_equals_gae_when_all_act() -> None:
    # player 1's move at step 1 has no next own move inside the window: V[T] bootstraps
    reward, discount = jnp.zeros((2, 2)), jnp.ones((2, 2))
    values = jnp.array([[0.0, 0.0], [0.0, 0.3], [0.0, 2.0]])
    adv = turn_gae_advantages(reward, discount, jnp.array([A, B]), values, 0.9, 1.0)
    np.testing.assert_allclose(adv[1, 1], 0.9 * 2.0 - 0.3, rtol=1e-6)
    # everyone acting on every step: the usual GAE
    key = jax.random.key(3)
    reward = jax.random.normal(key, (6, 4, 3))
    discount = (jax.random.uniform(jax.random.fold_in(key, 1), (6, 4, 3)) > 0.2).astype(float)
    values = jax.random.normal(jax.random.fold_in(key, 2), (7, 4, 3))
    got = turn_gae_advantages(reward, discount, jnp.ones((6, 4, 3), bool), values, 0.95, 0.9)
    want = gae_advantages(reward, 0.95 * discount, values, 0.9)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_ppo_on_a_turn_based_game_uses_the_turn_advantages() -> None:
    # kuhn poker rollout: PPO's advantages are the per-agent turn GAE, not step-wise GAE
    from jmarl.algos.ppo.update import compute_gae
    from jmarl.algos.rollout import init_rollout_state, make_rollout

    env = jmarl.make("kuhn_poker")
    cfg = jmarl.PPOConfig(num_envs=4, rollout_length=9, num_minibatches=1, num_epochs=1)
    trainer = jmarl.make_ppo(env, cfg, cfg.steps_per_update)
    params = trainer.acting_params(trainer.init_learner(jax.random.key(0)))
    rs = init_rollout_state(env, jax.random.key(1), cfg.num_envs)
    _, traj = make_rollout(env, trainer.act, cfg.rollout_length)(params, rs, jax.random.key(2))
    last = jnp.zeros_like(traj.reward[0])
    adv, _ = compute_gae(traj, last, cfg, env.spec.turn_based)
    values = jnp.concatenate([traj.extras["value"], last[None]])
    want = turn_gae_advantages(
        traj.reward, traj.discount, traj.alive, values, cfg.gamma, cfg.gae_lambda
    )
    np.testing.assert_allclose(adv, want, rtol=1e-6)
    assert env.spec.turn_based and env.spec.zero_sum
    # a loser's last bet is scored: some acting row has a negative advantage from a -1 or -2
    assert float(jnp.min(jnp.where(traj.alive, adv, 0.0))) < -0.5


def test_replay_algorithms_refuse_turn_based_games() -> None:
    from jmarl.config_check import ConfigError

    env = jmarl.make("tic_tac_toe")
    for algo in ("iql", "vdn", "maddpg"):
        spec = jmarl.ALGORITHMS[algo]
        mapping = jmarl.make_policy_mapping(env.spec, "shared")
        with pytest.raises(ConfigError, match="turn-based"):
            spec.make(env, spec.defaults, 10_000, mapping)
