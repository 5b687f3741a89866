"""simple_spread: hand-computed physics, rewards and observations; protocol conformance."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.algos.base import ActOutput
from jmarl.algos.rollout import init_rollout_state, make_rollout
from jmarl.env import Env, auto_reset
from jmarl.env.base import step_batch
from jmarl.env.mpe.simple_spread import (
    SimpleSpreadState,
    contact_forces,
    global_state,
    make_simple_spread,
    observations,
    rewards,
    scripted_landmark_policy,
    simple_spread_step,
)
from jmarl.env.spaces import Box, Discrete
from jmarl.testing import check_env


def _state(pos, vel, landmarks, step=0) -> SimpleSpreadState:
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return SimpleSpreadState(f32(pos), f32(vel), f32(landmarks), jnp.asarray(step, jnp.int32))


# --- physics ---------------------------------------------------------------------------------


def test_contact_force_of_overlapping_pair():
    # Distance 0.1, contact distance 0.3: penetration = k * log(1 + exp(0.2 / k)) ~= 0.2,
    # force on agent 0 = 100 * (p0 - p1) / 0.1 * 0.2 = 100 * (-1, 0) * 0.2 = (-20, 0).
    forces = contact_forces(jnp.array([[0.0, 0.0], [0.1, 0.0]]))
    np.testing.assert_allclose(forces, [[-20.0, 0.0], [20.0, 0.0]], atol=1e-4)


def test_contact_force_at_contact_distance_and_far_apart():
    # At exactly 0.3 apart: penetration = k * log(2), |force| = 100 * 1e-3 * log 2 = 0.0693.
    # At 1.0 apart the softplus underflows: no force.
    forces = contact_forces(jnp.array([[0.0, 0.0], [0.0, 0.3], [5.0, 5.0]]))
    np.testing.assert_allclose(forces[0], [0.0, -0.1 * np.log(2)], rtol=1e-3)
    np.testing.assert_allclose(forces[1], [0.0, 0.1 * np.log(2)], rtol=1e-3)
    np.testing.assert_array_equal(forces[2], [0.0, 0.0])


def test_contact_forces_sum_pairs_and_cancel():
    # Agent 1 sits between 0 and 2 (each 0.2 away): the two pushes on it cancel, and
    # Newton's third law makes all forces sum to zero.
    pos = jnp.array([[-0.2, 0.0], [0.0, 0.0], [0.2, 0.0]])
    forces = contact_forces(pos)
    np.testing.assert_allclose(forces[1], [0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(forces.sum(axis=0), [0.0, 0.0], atol=1e-4)
    assert forces[0, 0] < -9.0 and forces[2, 0] > 9.0  # 100 * 0.1 = 10 outward each


def test_coincident_agents_give_no_nan():
    pos = jnp.zeros((3, 2))
    forces = contact_forces(pos)
    np.testing.assert_array_equal(forces, jnp.zeros((3, 2)))
    grad = jax.grad(lambda p: jnp.sum(contact_forces(p) ** 2))(pos)
    assert np.all(np.isfinite(grad))


def test_one_discrete_step_by_hand():
    # One agent at (0.5, -0.5) with velocity (1, 0) pushes +x (action 2, force 5):
    # pos += v dt -> (0.6, -0.5); v = v * 0.75 + 5 * 0.1 -> (1.25, 0).
    state = _state([[0.5, -0.5]], [[1.0, 0.0]], [[0.0, 0.0]])
    new, ts = simple_spread_step(state, jnp.array([2]), max_steps=25)
    np.testing.assert_allclose(new.agent_pos, [[0.6, -0.5]], rtol=1e-6)
    np.testing.assert_allclose(new.agent_vel, [[1.25, 0.0]], rtol=1e-6)
    assert int(new.step) == 1
    np.testing.assert_allclose(ts.obs[0, :4], [1.25, 0.0, 0.6, -0.5], rtol=1e-6)


@pytest.mark.parametrize(
    ("action", "u"),
    [
        ([0.0, 0.2, 0.7, 0.9, 0.1], [0.5, -0.8]),  # u = (a2 - a1, a4 - a3)
        ([0.3, -1.0, 2.0, 0.0, 0.0], [1.0, 0.0]),  # clipped to [0, 1] first
    ],
)
def test_one_continuous_step_by_hand(action, u):
    # From rest the position does not move in the first step; v = 5 * u * 0.1 = u / 2.
    state = _state([[0.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]])
    new, _ = simple_spread_step(state, jnp.array([action]), max_steps=25, continuous=True)
    np.testing.assert_array_equal(new.agent_pos, [[0.0, 0.0]])
    np.testing.assert_allclose(new.agent_vel, [np.asarray(u) / 2], rtol=1e-6)


@pytest.mark.parametrize(("action", "vel"), [(0, (0, 0)), (1, (-0.5, 0)), (3, (0, -0.5))])
def test_discrete_action_meanings(action, vel):
    state = _state([[0.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]])
    new, _ = simple_spread_step(state, jnp.array([action]), max_steps=25)
    np.testing.assert_allclose(new.agent_vel, [vel], atol=1e-7)


# --- rewards, observations, state ------------------------------------------------------------

# Two agents 0.2 apart (colliding) and two landmarks.
_POS = [[0.0, 0.0], [0.2, 0.0]]
_LANDMARKS = [[0.0, 0.3], [1.0, 0.0]]


def test_reward_by_hand():
    # landmark 0: min(0.3, sqrt(0.2^2 + 0.3^2) = 0.36) = 0.3; landmark 1: min(1.0, 0.8) = 0.8
    # global = -1.1; each agent collides with the other: local = -1.
    r = rewards(jnp.array(_POS), jnp.array(_LANDMARKS), 0.5)
    np.testing.assert_allclose(r, [-1.05, -1.05], rtol=1e-6)  # 0.5 * -1.1 + 0.5 * -1
    r = rewards(jnp.array(_POS), jnp.array(_LANDMARKS), 0.25)
    np.testing.assert_allclose(r, [-1.075, -1.075], rtol=1e-6)  # 0.75 * -1.1 + 0.25 * -1


def test_reward_is_computed_after_the_step():
    # From rest, positions do not change in the first step (p += v dt uses the old v), so the
    # first reward equals the hand-computed one although contact forces push the agents apart.
    state = _state(_POS, [[0.0, 0.0]] * 2, _LANDMARKS)
    new, ts = simple_spread_step(state, jnp.array([0, 0]), max_steps=25)
    np.testing.assert_allclose(ts.reward, [-1.05, -1.05], rtol=1e-6)
    assert new.agent_vel[0, 0] < 0 < new.agent_vel[1, 0]


def test_rewards_permute_with_agents():
    pos = jax.random.uniform(jax.random.key(1), (6, 2), minval=-0.3, maxval=0.3)
    landmarks = jax.random.uniform(jax.random.key(2), (6, 2), minval=-1, maxval=1)
    perm = jnp.array([3, 0, 5, 1, 2, 4])
    np.testing.assert_allclose(
        rewards(pos[perm], landmarks, 0.5), rewards(pos, landmarks, 0.5)[perm], rtol=1e-6
    )


def test_observation_layout_by_hand():
    state = _state(_POS, [[0.1, 0.2], [0.0, -0.1]], _LANDMARKS)
    obs = observations(state)
    assert obs.shape == (2, 12) and obs.dtype == jnp.float32
    #        vel        pos       landmarks - pos        other - pos   comm
    want0 = [0.1, 0.2, 0.0, 0.0, 0.0, 0.3, 1.0, 0.0, 0.2, 0.0, 0.0, 0.0]
    want1 = [0.0, -0.1, 0.2, 0.0, -0.2, 0.3, 0.8, 0.0, -0.2, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(obs, [want0, want1], atol=1e-7)


def test_other_agents_in_agent_order_skipping_self():
    pos = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]
    obs = observations(_state(pos, np.zeros((3, 2)), np.zeros((3, 2))))
    others = obs[:, 10:14].reshape(3, 2, 2)[..., 0]  # x offsets of the two others
    np.testing.assert_allclose(others, [[1.0, 2.0], [-1.0, 1.0], [-2.0, -1.0]])


def test_global_state_layout():
    state = _state(_POS, [[0.1, 0.2], [0.0, -0.1]], _LANDMARKS)
    want = [0.0, 0.0, 0.2, 0.0, 0.1, 0.2, 0.0, -0.1, 0.0, 0.3, 1.0, 0.0]
    np.testing.assert_allclose(global_state(state), want, atol=1e-7)


# --- the Env ---------------------------------------------------------------------------------


def test_spec():
    spec = make_simple_spread(num_agents=4, max_steps=30).spec
    assert spec.name == "simple_spread" and spec.max_steps == 30
    assert spec.agent_ids == ("agent_0", "agent_1", "agent_2", "agent_3")
    assert spec.observation_space == Box(-np.inf, np.inf, (24,))
    assert spec.state_space == Box(-np.inf, np.inf, (24,))
    assert spec.action_space == Discrete(5)
    continuous = make_simple_spread(num_agents=2, continuous_actions=True).spec
    assert continuous.action_space == Box(0.0, 1.0, (5,))


def test_reset_distribution():
    state, ts = jax.vmap(make_simple_spread(num_agents=3).reset)(
        jax.random.split(jax.random.key(0), 200)
    )
    xy = np.concatenate([state.agent_pos, state.landmark_pos]).reshape(-1)
    assert -1.0 <= xy.min() < -0.99 and 0.99 < xy.max() <= 1.0
    np.testing.assert_array_equal(state.agent_vel, 0.0)
    np.testing.assert_array_equal(state.step, 0)
    assert not ts.done.any() and ts.alive.all() and ts.action_mask is None


def test_truncation_and_auto_reset():
    env = make_simple_spread(num_agents=2, max_steps=3)
    state, _ = env.reset(jax.random.key(0))
    step = jax.jit(env.step)
    flags = []
    for t in range(4):
        key = jax.random.key(10 + t)
        state, ts = step(key, state, jnp.array([2, 4]))
        flags.append((bool(ts.done), ts.truncated.tolist(), ts.terminated.tolist()))
        if t == 2:  # done: the state and obs already belong to the next episode
            fresh, fresh_ts = env.reset(jax.random.split(key)[1])
            assert int(state.step) == 0
            np.testing.assert_array_equal(state.agent_vel, 0.0)
            np.testing.assert_array_equal(ts.obs, fresh_ts.obs)
            np.testing.assert_array_equal(state.landmark_pos, fresh.landmark_pos)
    no, yes = [False, False], [True, True]
    assert flags == [(False, no, no), (False, no, no), (True, yes, no), (False, no, no)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_agents": 3},
        {"num_agents": 7, "max_steps": 10},
        {"num_agents": 3, "continuous_actions": True},
        {"num_agents": 1, "max_steps": 5},
    ],
)
def test_check_env(kwargs):
    check_env(make_simple_spread(**kwargs), jax.random.key(0), num_steps=40)


def test_many_agents_jit_vmap():
    n, envs, steps = 100, 4, 5
    env = make_simple_spread(num_agents=n)

    def rollout(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        state, ts = env.reset(key)

        def body(carry, k):
            state, obs = carry
            state, ts = env.step(k, state, scripted_landmark_policy(obs))
            return (state, ts.obs), ts.reward

        (_, obs), reward = jax.lax.scan(body, (state, ts.obs), jax.random.split(key, steps))
        return obs, reward

    obs, reward = jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.key(0), envs))
    assert obs.shape == (envs, n, 6 * n) and reward.shape == (envs, steps, n)
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))


# --- check_env catches broken environments ---------------------------------------------------

_UNSEEDED = np.random.default_rng()  # drawn at trace time: makes an env non-deterministic


def _broken(reset_fix=None, step_fix=None, auto=True) -> Env:
    """simple_spread (2 agents, 4 steps) with its outputs edited by ``*_fix(state, ts)``."""
    base = make_simple_spread(num_agents=2, max_steps=4)
    ident = lambda state, ts: (state, ts)
    reset_fix, step_fix = reset_fix or ident, step_fix or ident
    reset = lambda key: reset_fix(*base.reset(key))
    raw = lambda key, state, a: step_fix(*simple_spread_step(state, a, max_steps=4))
    return Env(base.spec, reset, auto_reset(reset, raw) if auto else raw)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            _broken(step_fix=lambda s, ts: (s, ts._replace(reward=ts.reward[:, None]))),
            "step returns a TimeStep whose structure",
        ),
        (
            _broken(step_fix=lambda s, ts: (s._replace(step=s.step.astype(jnp.float32)), ts)),
            "step changes the state's structure",
        ),
        (
            _broken(lambda s, ts: (s._replace(step=jnp.asarray(0)), ts)),  # weak-typed counter
            ".truncated: ~bool[2]",
        ),
        (
            _broken(step_fix=lambda s, ts: (s, ts._replace(reward=ts.reward / 0.0))),
            "non-finite reward",
        ),
        (
            _broken(step_fix=lambda s, ts: (s, ts._replace(reward=ts.reward + _UNSEEDED.random()))),
            "two rollouts from the same key differ",
        ),
        (_broken(auto=False), "truncated after 1 steps, expected max_steps=4"),
        (
            _broken(step_fix=lambda s, ts: (s, ts._replace(truncated=ts.truncated & False))),
            "with no terminated or truncated agent",
        ),
    ],
)
def test_check_env_catches(env, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_env(env, jax.random.key(0), num_steps=12)


# --- scripted policy -------------------------------------------------------------------------


def test_scripted_policy_heads_for_its_landmark():
    # Agent 0's landmark is mostly +x away, agent 1's mostly -y away.
    state = _state([[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0]] * 2, [[0.5, 0.1], [0.1, -0.5]])
    obs = observations(state)
    np.testing.assert_array_equal(scripted_landmark_policy(obs), [2, 3])
    batched = scripted_landmark_policy(jnp.stack([obs, obs]))
    assert batched.shape == (2, 2) and batched.dtype == jnp.int32
    # Moving fast toward the landmark, it brakes: 0.5 - 0.2 * 3 < 0 -> push -x.
    fast = observations(state._replace(agent_vel=jnp.array([[3.0, 0.0], [0.0, 0.0]])))
    assert int(scripted_landmark_policy(fast)[0]) == 1


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("continuous", "shape", "dtype"),
    [
        (False, (3, 5), jnp.int32),
        (False, (4,), jnp.int32),
        (True, (3,), jnp.float32),
        (True, (3, 4), jnp.float32),
        (False, (), jnp.int32),
    ],
)
def test_bad_action_shape_raises(continuous, shape, dtype):
    env = make_simple_spread(num_agents=3, continuous_actions=continuous)
    state, _ = env.reset(jax.random.key(0))
    expected = "(3, 5)" if continuous else "(3,)"
    with pytest.raises(ValueError, match=re.escape(f"expects actions of shape {expected}")):
        jax.jit(env.step)(jax.random.key(1), state, jnp.zeros(shape, dtype))


def test_float_discrete_actions_raise():
    env = make_simple_spread(num_agents=2)
    state, _ = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match="integer actions"):
        env.step(jax.random.key(1), state, jnp.zeros((2,), jnp.float32))


@pytest.mark.parametrize(
    "kwargs", [{"num_agents": 0}, {"max_steps": 0}, {"local_ratio": 1.5}, {"num_agents": 2.5}]
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="simple_spread needs"):
        make_simple_spread(**kwargs)


# --- registry --------------------------------------------------------------------------------


def test_make_by_name():
    env = jmarl.make("simple_spread", num_agents=4, max_steps=10, continuous_actions=True)
    assert isinstance(env, Env)
    assert env.spec.num_agents == 4 and env.spec.max_steps == 10
    assert env.spec.action_space == Box(0.0, 1.0, (5,))
    _, ts = env.reset(jax.random.key(0))
    assert ts.obs.shape == (4, 24)


def test_make_unknown_name_or_argument_raises():
    with pytest.raises(ValueError, match="did you mean 'simple_spread'"):
        jmarl.make("simple_sprad")
    with pytest.raises(ValueError, match="bad arguments"):
        jmarl.make("simple_spread", num_landmarks=3)
    assert "simple_spread" in jmarl.list_envs()


def test_fused_auto_reset_step_equals_generic_auto_reset() -> None:
    """env.step builds observations once, but must equal auto_reset(reset, step_without_reset)."""
    from jmarl.env.base import auto_reset

    env = jmarl.make("simple_spread", num_agents=5, max_steps=4)
    generic = jax.jit(auto_reset(env.reset, env.step_without_reset))
    fused = jax.jit(env.step)
    s1, _ = env.reset(jax.random.key(0))
    s2 = s1
    for t in range(10):  # crosses two episode boundaries
        k = jax.random.key(100 + t)
        a = jax.random.randint(k, (5,), 0, 5)
        s1, t1 = fused(k, s1, a)
        s2, t2 = generic(k, s2, a)
        for x, y in zip(jax.tree.leaves((s1, t1)), jax.tree.leaves((s2, t2))):
            np.testing.assert_allclose(x, y, atol=1e-6)


@pytest.mark.parametrize("continuous", [False, True])
def test_batch_step_equals_vmap_of_step_across_episode_ends(continuous: bool) -> None:
    """env.batch_step (fresh episodes drawn only when one ends) gives vmap(env.step)'s states
    and timesteps over split(key, E), also in envs whose episodes end at different steps and
    under an outer vmap (seeds), where its cond becomes a select."""
    env = jmarl.make("simple_spread", num_agents=3, max_steps=4, continuous_actions=continuous)
    plain = step_batch(env._replace(batch_step=None))
    num_envs = 5
    states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), num_envs))
    states = states._replace(step=jnp.arange(num_envs, dtype=jnp.int32) % 4)  # staggered ends
    shape = (num_envs, 3, 5) if continuous else (num_envs, 3)

    def actions(k: jax.Array) -> jax.Array:
        if continuous:
            return jax.random.uniform(k, shape)
        return jax.random.randint(k, shape, 0, 5)

    batched, vmapped = jax.jit(env.batch_step), jax.jit(plain)
    seeds = jax.jit(jax.vmap(env.batch_step, in_axes=(0, None, None)))
    for t in range(10):
        k_act, k_step = jax.random.split(jax.random.key(100 + t))
        a = actions(k_act)
        expected = vmapped(k_step, states, a)
        got = batched(k_step, states, a)
        got_seeds = seeds(jnp.stack([k_step, k_step]), states, a)
        for x, y, z in zip(*map(jax.tree.leaves, (expected, got, got_seeds))):
            np.testing.assert_allclose(y, x, atol=1e-6)
            np.testing.assert_allclose(z[1], x, atol=1e-6)
        states = expected[0]


def test_check_env_catches_a_batch_step_that_differs_from_vmap_of_step() -> None:
    env = make_simple_spread(num_agents=2, max_steps=4)
    no_reset = lambda key, states, a: jax.vmap(env.step_without_reset)(  # never restarts
        jax.random.split(key, a.shape[0]), states, a
    )
    with pytest.raises(AssertionError, match="batch_step differs from vmap"):
        check_env(env._replace(batch_step=no_reset), jax.random.key(0), num_steps=12)


def test_rollouts_step_envs_through_batch_step() -> None:
    """make_rollout uses env.batch_step when the env has one (planted: +1 reward)."""
    env = jmarl.make("simple_spread", num_agents=2, max_steps=4)

    def plus_one(key, states, a):
        states, ts = env.batch_step(key, states, a)
        return states, ts._replace(reward=ts.reward + 1.0)

    def act(params, ts, key, carry):
        return ActOutput(jax.random.randint(key, ts.alive.shape, 0, 5), {}, carry)

    rewards = []
    for e in (env, env._replace(batch_step=plus_one)):
        rollout = jax.jit(make_rollout(e, act, rollout_length=6))
        _, traj = rollout((), init_rollout_state(e, jax.random.key(0), 3), jax.random.key(1))
        rewards.append(np.asarray(traj.reward))
    np.testing.assert_allclose(rewards[1], rewards[0] + 1.0, atol=1e-5)
