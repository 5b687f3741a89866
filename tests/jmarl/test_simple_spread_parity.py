"""simple_spread against its reference, ``mpe2.simple_spread_v3``.

(a) the same spaces; (b) the same transitions, observations, rewards and truncation from the
same state under the same actions; (c) the same return statistics under a random and a
scripted policy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mpe2 import simple_spread_v3
from pettingzoo.utils.env_logger import EnvLogger

from jmarl.env.mpe.simple_spread import (
    SimpleSpreadState,
    make_simple_spread,
    observations,
    scripted_landmark_policy,
    simple_spread_step,
)
from jmarl.env.spaces import Box, Discrete

EPISODES = 200
# Per-agent returns (3 agents, 25 steps), measured over 2000-3000 episodes on each side.
RANDOM_RETURN = -26.3
SCRIPTED_RETURN = -10.8


def _reference(n: int, max_steps: int = 25, continuous: bool = False, local_ratio: float = 0.5):
    return simple_spread_v3.parallel_env(
        N=n, max_cycles=max_steps, continuous_actions=continuous, local_ratio=local_ratio
    )


def _load(ref, state: SimpleSpreadState) -> None:
    """Overwrites the reference world with our state (float32 values, as float64)."""
    world = ref.unwrapped.world
    for i, agent in enumerate(world.agents):
        agent.state.p_pos = np.array(state.agent_pos[i], np.float64)
        agent.state.p_vel = np.array(state.agent_vel[i], np.float64)
    for i, landmark in enumerate(world.landmarks):
        landmark.state.p_pos = np.array(state.landmark_pos[i], np.float64)


def _stack(ref, per_agent: dict) -> np.ndarray:
    return np.stack([np.asarray(per_agent[a]) for a in ref.possible_agents])


@pytest.fixture
def quiet_pettingzoo():
    """Silences (and afterwards clears) PettingZoo's log of clipped out-of-bounds actions."""
    EnvLogger.suppress_output()
    yield
    EnvLogger.unsuppress_output()
    EnvLogger.flush()


# --- (a) spaces ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("continuous", [False, True])
def test_same_spaces(n, continuous):
    ref = _reference(n, continuous=continuous)
    spec = make_simple_spread(num_agents=n, continuous_actions=continuous).spec
    assert spec.agent_ids == tuple(ref.possible_agents)
    for agent in ref.possible_agents:
        obs_space, act_space = ref.observation_space(agent), ref.action_space(agent)
        assert spec.observation_space.shape == obs_space.shape == (6 * n,)
        assert np.all(np.isinf(obs_space.low)) and np.all(np.isinf(obs_space.high))
        if continuous:
            assert isinstance(spec.action_space, Box)
            assert spec.action_space.shape == act_space.shape == (5,)
            np.testing.assert_array_equal(act_space.low, spec.action_space.low)
            np.testing.assert_array_equal(act_space.high, spec.action_space.high)
        else:
            assert spec.action_space == Discrete(int(act_space.n))
    ref.close()


# --- (b) transitions -------------------------------------------------------------------------


def _start(key: jax.Array, n: int, crowded: bool) -> SimpleSpreadState:
    """A reset state; ``crowded`` packs the agents into a 0.3-wide square, moving."""
    state, _ = make_simple_spread(num_agents=n).reset(key)
    if not crowded:
        return state
    vel = 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (n, 2))
    return state._replace(agent_pos=0.15 * state.agent_pos, agent_vel=vel)


def _actions(rng: np.random.Generator, steps: int, n: int, continuous: bool) -> np.ndarray:
    if continuous:  # partly outside [0, 1], so both sides clip
        return rng.uniform(-0.25, 1.25, (steps, n, 5)).astype(np.float32)
    return rng.integers(0, 5, (steps, n)).astype(np.int32)


@pytest.mark.parametrize(
    ("n", "continuous", "crowded", "local_ratio"),
    [
        (3, False, False, 0.5),
        (3, False, True, 0.5),
        (3, True, True, 0.5),
        (5, False, True, 0.25),
        (5, True, False, 0.5),
        (1, False, False, 0.5),
    ],
)
def test_same_transitions(n, continuous, crowded, local_ratio, quiet_pettingzoo):
    steps = 25
    ref = _reference(n, steps, continuous, local_ratio)
    ref.reset(seed=0)
    state = _start(jax.random.key(n + 10 * crowded), n, crowded)
    _load(ref, state)
    step = jax.jit(
        functools.partial(
            simple_spread_step, max_steps=steps, continuous=continuous, local_ratio=local_ratio
        )
    )
    obs = _stack(ref, {a: ref.unwrapped.observe(a) for a in ref.possible_agents})
    np.testing.assert_allclose(observations(state), obs, atol=1e-6)
    contacts = 0
    for t, actions in enumerate(_actions(np.random.default_rng(n), steps, n, continuous)):
        joint = dict(zip(ref.possible_agents, actions, strict=True))
        ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(joint)
        state, ts = step(state, jnp.asarray(actions))
        where = f"step {t}"
        np.testing.assert_allclose(ts.obs, _stack(ref, ref_obs), atol=1e-4, err_msg=where)
        np.testing.assert_allclose(ts.reward, _stack(ref, ref_reward), atol=1e-4, err_msg=where)
        np.testing.assert_array_equal(ts.truncated, _stack(ref, ref_trunc), err_msg=where)
        np.testing.assert_array_equal(ts.terminated, _stack(ref, ref_term), err_msg=where)
        assert bool(ts.done) == (t == steps - 1), where
        pos = np.asarray(state.agent_pos)
        contacts += np.sum(np.linalg.norm(pos[:, None] - pos[None], axis=-1) < 0.3) - n
    assert not ref.agents  # the reference episode is over too
    if crowded:
        assert contacts > 0  # contact forces and the collision penalty were exercised
    ref.close()


# --- (c) return statistics -------------------------------------------------------------------


def _reference_returns(scripted: bool, episodes: int, seed: int) -> np.ndarray:
    """Per-agent returns of ``episodes`` reference episodes (3 agents, 25 steps)."""
    ref = _reference(3)
    rng = np.random.default_rng(seed)
    policy = jax.jit(scripted_landmark_policy)
    returns = []
    for episode in range(episodes):
        obs, _ = ref.reset(seed=seed + episode)
        total = 0.0
        while ref.agents:
            actions = np.asarray(policy(_stack(ref, obs))) if scripted else rng.integers(0, 5, 3)
            obs, reward, *_ = ref.step(dict(zip(ref.possible_agents, actions, strict=True)))
            total += float(np.mean(_stack(ref, reward)))
        returns.append(total)
    ref.close()
    return np.asarray(returns)


def _our_returns(scripted: bool, episodes: int, key: jax.Array) -> np.ndarray:
    """Per-agent returns of ``episodes`` episodes of our env, run as one ``vmap``."""
    env = make_simple_spread(num_agents=3, max_steps=25)

    def episode(key: jax.Array) -> jax.Array:
        state, ts = env.reset(key)

        def body(carry, k):
            state, obs = carry
            k_act, k_step = jax.random.split(k)
            random = jax.random.randint(k_act, (3,), 0, 5)
            actions = scripted_landmark_policy(obs) if scripted else random
            state, ts = env.step(k_step, state, actions)
            return (state, ts.obs), jnp.mean(ts.reward)

        _, rewards = jax.lax.scan(body, (state, ts.obs), jax.random.split(key, 25))
        return jnp.sum(rewards)

    return np.asarray(jax.jit(jax.vmap(episode))(jax.random.split(key, episodes)))


@pytest.mark.parametrize(
    ("scripted", "expected"), [(False, RANDOM_RETURN), (True, SCRIPTED_RETURN)]
)
def test_same_returns(scripted, expected):
    ours = _our_returns(scripted, EPISODES, jax.random.key(7))
    ref = _reference_returns(scripted, EPISODES, seed=1000)
    # Two-sample test on the means, at 4 standard errors (seeds are fixed: no flakiness).
    se = np.sqrt(ours.var(ddof=1) / EPISODES + ref.var(ddof=1) / EPISODES)
    assert abs(ours.mean() - ref.mean()) < 4 * se, (ours.mean(), ref.mean(), se)
    for returns in (ours, ref):
        assert abs(returns.mean() - expected) < 4 * returns.std(ddof=1) / np.sqrt(EPISODES)
