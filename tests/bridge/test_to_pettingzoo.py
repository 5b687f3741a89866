"""``to_pettingzoo``: a jmarl env behind PettingZoo's parallel API."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from bridge.pettingzoo.to_pettingzoo import JaxParallelEnv, to_pettingzoo
from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset

with warnings.catch_warnings():
    # pettingzoo.test imports connect_four_v3 the deprecated way on first import.
    warnings.filterwarnings("ignore", "The old environment creation API", DeprecationWarning)
    from pettingzoo.test import parallel_api_test, parallel_seed_test


def spread(n: int = 3, continuous: bool = False, seed: int | None = None) -> JaxParallelEnv:
    return to_pettingzoo(
        jmarl.make("simple_spread", num_agents=n, continuous_actions=continuous), seed=seed
    )


# --- a tiny env with deaths, action masks and heterogeneous (padded) spaces ----------------


class CountState(NamedTuple):
    t: jax.Array  # int32[]
    alive: jax.Array  # bool[3]


MAX_T = 4
NUM_ACTIONS = np.array([3, 4, 4])  # "a" has Discrete(3), padded to the stacked Discrete(4)


def _count_ts(s: CountState, reward: jax.Array, died: jax.Array) -> TimeStep:
    t = s.t.astype(jnp.float32) / MAX_T
    obs = jnp.stack([jnp.stack([t, i / 2, 0.0 * t]) for i in range(3)])  # [3, 3]
    j = jnp.arange(4)
    mask = (j[None, :] < NUM_ACTIONS[:, None]) & (j[None, :] != s.t % NUM_ACTIONS[:, None])
    done = s.t >= MAX_T
    return TimeStep(
        obs=obs,
        state=jnp.concatenate([t[None], s.alive.astype(jnp.float32)]),
        reward=reward,
        terminated=died,
        truncated=jnp.broadcast_to(done, (3,)) & s.alive,
        done=done,
        alive=s.alive,
        action_mask=mask,
    )


def _count_reset(key: jax.Array) -> tuple[CountState, TimeStep]:
    s = CountState(jnp.zeros((), jnp.int32), jnp.ones(3, bool))
    return s, _count_ts(s, jnp.zeros(3), jnp.zeros(3, bool))


def _count_step(key: jax.Array, s: CountState, actions: jax.Array) -> tuple[CountState, TimeStep]:
    t = s.t + 1
    died = s.alive & (jnp.arange(3) == 2) & (t == 2)  # agent "c" dies on step 2
    s2 = CountState(t, s.alive & ~died)
    reward = jnp.where(s.alive, actions.astype(jnp.float32), 0.0)  # paid its action
    return s2, _count_ts(s2, reward, died)


def make_count_env(expose_terminal: bool) -> Env:
    """Agents "a" (obs Box(2), Discrete(3)), "b" and "c" (Box(3), Discrete(4)); "c" dies on
    step 2; episodes are truncated after 4 steps. Rewards equal the actions taken."""
    step = auto_reset(_count_reset, _count_step)
    box3 = spaces.Box(0.0, 1.0, (3,))
    spec = EnvSpec(
        name="count",
        agent_ids=("a", "b", "c"),
        observation_space=box3,
        action_space=spaces.Discrete(4),
        state_space=spaces.Box(0.0, 1.0, (4,)),
        max_steps=MAX_T,
        agent_observation_spaces=(spaces.Box(0.0, 1.0, (2,)), box3, box3),
        agent_action_spaces=(spaces.Discrete(3), spaces.Discrete(4), spaces.Discrete(4)),
    )
    return Env(spec, _count_reset, step, _count_step if expose_terminal else None)


# --- PettingZoo's conformance tests --------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "continuous"), [(3, False), (7, False), (3, True), (7, True)], ids=str
)
def test_parallel_api_test_simple_spread(n: int, continuous: bool) -> None:
    parallel_api_test(spread(n, continuous, seed=0), num_cycles=100)


@pytest.mark.parametrize("expose_terminal", [False, True])
def test_parallel_api_test_with_deaths_masks_and_padded_spaces(expose_terminal: bool) -> None:
    parallel_api_test(to_pettingzoo(make_count_env(expose_terminal), seed=0), num_cycles=10)


@pytest.mark.parametrize("continuous", [False, True])
def test_parallel_seed_test(continuous: bool) -> None:
    parallel_seed_test(lambda: spread(3, continuous), num_cycles=30)


# --- seeding and determinism ---------------------------------------------------------------


def rollout(env: JaxParallelEnv, seed: int, steps: int) -> list[tuple[dict, dict]]:
    """``steps`` steps with seeded random actions, resetting (without a seed) between
    episodes; returns every step's (obs, rewards)."""
    rng = np.random.default_rng(123)
    out = []
    env.reset(seed=seed)
    for _ in range(steps):
        if not env.agents:
            env.reset()
        actions = {a: int(rng.integers(5)) for a in env.agents}
        obs, rewards, *_ = env.step(actions)
        out.append((obs, rewards))
    return out


def test_same_seed_same_trajectory_over_several_episodes() -> None:
    env1, env2 = spread(3), spread(3)
    first, second = rollout(env1, 7, 60), rollout(env2, 7, 60)
    for (o1, r1), (o2, r2) in zip(first, second):
        assert r1 == r2
        assert all(np.array_equal(o1[a], o2[a]) for a in o1)
    # Episodes 2 and 3 (after seedless resets) differ from episode 1.
    assert not np.array_equal(first[0][0]["agent_0"], first[25][0]["agent_0"])
    assert not np.array_equal(first[25][0]["agent_0"], first[50][0]["agent_0"])
    # Another seed gives another trajectory.
    other = rollout(env1, 8, 60)
    assert any(r1 != r3 for (_, r1), (_, r3) in zip(first, other))


def test_constructor_seed_seeds_the_first_reset() -> None:
    env = spread(3, seed=11)
    first, _ = env.reset()
    again, _ = env.reset()
    explicit, _ = env.reset(seed=11)
    assert np.array_equal(first["agent_0"], explicit["agent_0"])
    assert not np.array_equal(first["agent_0"], again["agent_0"])
    with pytest.raises(TypeError, match="seed"):
        env.reset(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)


def test_large_seeds_are_not_truncated_to_32_bits() -> None:
    env = spread(3)
    obs = [env.reset(seed=s)[0]["agent_0"] for s in (0, 2**32, 2**64, np.uint64(2**32))]
    assert not np.array_equal(obs[0], obs[1]) and not np.array_equal(obs[1], obs[2])
    assert np.array_equal(obs[1], obs[3])


def test_observations_rewards_and_state_equal_jmarl_for_the_same_key() -> None:
    jenv = jmarl.make("simple_spread", num_agents=4)
    penv = to_pettingzoo(jenv)
    obs, _ = penv.reset(seed=3)
    key = jax.random.key(3)
    key, sub = jax.random.split(key)
    state, ts = jenv.reset(sub)
    step = jax.jit(jenv.step)
    rng = np.random.default_rng(0)
    for t in range(25):
        for i, a in enumerate(penv.possible_agents):
            # the wrapper steps through step_without_reset, a separately compiled program
            np.testing.assert_allclose(obs[a], np.asarray(ts.obs[i]), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(penv.state(), np.asarray(ts.state), rtol=1e-6, atol=1e-6)
        acts = rng.integers(5, size=4)
        obs, rewards, terms, truncs, _ = penv.step(dict(zip(penv.possible_agents, acts)))
        key, sub = jax.random.split(key)
        state, ts = step(sub, state, jnp.asarray(acts, jnp.int32))
        np.testing.assert_allclose(
            [rewards[a] for a in penv.possible_agents], np.asarray(ts.reward), rtol=1e-6
        )
        assert all(truncs[a] == (t == 24) for a in penv.possible_agents)
        assert not any(terms.values())


# --- episodes and observations ---------------------------------------------------------------


def test_episode_lasts_25_steps_then_no_agents() -> None:
    env = spread(3, seed=0)
    env.reset()
    for t in range(25):
        assert env.agents == env.possible_agents
        obs, rewards, terms, truncs, infos = env.step(
            {a: env.action_space(a).sample() for a in env.agents}
        )
        assert set(obs) == set(rewards) == set(terms) == set(truncs) == set(infos)
        assert set(obs) == set(env.possible_agents)
        assert all(truncs.values()) == (t == 24)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    env.reset()
    assert env.agents == env.possible_agents


@pytest.mark.parametrize("continuous", [False, True])
def test_observations_are_numpy_members_of_their_spaces(continuous: bool) -> None:
    env = spread(3, continuous, seed=0)
    obs, infos = env.reset()
    assert infos == {a: {} for a in env.agents}  # simple_spread has no action mask
    for _ in range(3):
        for a, o in obs.items():
            assert isinstance(o, np.ndarray) and o.dtype == np.float32
            assert o.flags.writeable
            assert env.observation_space(a).contains(o)
        obs, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert env.observation_space("agent_0") is env.observation_space("agent_0")
    assert env.action_space("agent_1") is env.action_spaces["agent_1"]
    assert env.state().shape == (18,) and env.state().dtype == np.float32


def test_actions_in_any_integer_form_are_accepted() -> None:
    env = spread(3, seed=0)
    env.reset()
    forms = {"agent_0": 1, "agent_1": np.int64(2), "agent_2": jnp.asarray(3, jnp.int32)}
    env.step(forms)
    env.step({"agent_0": np.array(4, np.uint8), "agent_1": True, "agent_2": np.int16(0)})


def test_continuous_actions_in_float64_are_converted() -> None:
    env = spread(3, continuous=True, seed=0)
    env.reset()
    env.step({a: np.full(5, 0.5) for a in env.agents})
    env.step({a: [0.0, 1.0, 0.0, 1.0, 0.0] for a in env.agents})


# --- bad input -------------------------------------------------------------------------------


def test_missing_and_unknown_agents_raise_value_error_naming_them() -> None:
    env = spread(3, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": 0})
    env.reset()
    with pytest.raises(ValueError, match="agent_2"):
        env.step({"agent_0": 0, "agent_1": 0})
    with pytest.raises(ValueError, match="'bogus'"):
        env.step({"agent_0": 0, "agent_1": 0, "agent_2": 0, "bogus": 0})
    with pytest.raises(TypeError, match="dict"):
        env.step([0, 0, 0])  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="bogus"):
        env.observation_space("bogus")


@pytest.mark.parametrize(
    ("continuous", "bad"),
    [
        (False, 5),
        (False, -1),
        (False, 1.0),
        (False, np.array([1, 2])),
        (False, None),
        (True, np.zeros(4)),
        (True, np.full(5, 1.5)),
        (True, np.full(5, np.nan)),
        (True, "up"),
    ],
    ids=str,
)
def test_action_outside_the_space_raises_value_error(continuous: bool, bad: object) -> None:
    env = spread(3, continuous, seed=0)
    env.reset()
    good = env.action_space("agent_0").sample()
    space = "Box" if continuous else r"Discrete\(5"
    with pytest.raises(ValueError, match=rf"agent 'agent_1' is not in its action space {space}"):
        env.step({"agent_0": good, "agent_1": bad, "agent_2": good})
    env.step({a: good for a in env.agents})  # the env is unharmed


def test_render_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="render"):
        to_pettingzoo(jmarl.make("simple_spread"), render_mode="human")


# --- deaths, action masks, padded spaces -----------------------------------------------------


@pytest.mark.parametrize("expose_terminal", [False, True])
def test_deaths_masks_and_padded_spaces(expose_terminal: bool) -> None:
    env = to_pettingzoo(make_count_env(expose_terminal), seed=0)
    obs, infos = env.reset()
    assert env.agents == ["a", "b", "c"]
    assert obs["a"].shape == (2,) and obs["b"].shape == (3,)
    assert env.action_space("a").n == 3 and env.action_space("b").n == 4
    # t = 0: action 0 is masked for everyone; "a" also loses the padded action 3.
    assert infos["a"]["action_mask"].tolist() == [0, 1, 1]
    assert infos["b"]["action_mask"].tolist() == [0, 1, 1, 1]
    assert infos["a"]["action_mask"].dtype == np.int8
    with pytest.raises(ValueError, match=r"agent 'a' is not in its action space Discrete\(3"):
        env.step({"a": 3, "b": 0, "c": 0})

    # Step 1: everyone lives; rewards are the actions taken.
    obs, rew, term, trunc, infos = env.step({"a": 2, "b": 3, "c": 1})
    assert rew == {"a": 2.0, "b": 3.0, "c": 1.0}
    assert infos["a"]["action_mask"].tolist() == [1, 0, 1]
    assert env.observation_space("a").contains(obs["a"])

    # Step 2: "c" dies: it is reported once, terminated, then leaves.
    obs, rew, term, trunc, _ = env.step({"a": 1, "b": 1, "c": 1})
    assert set(obs) == {"a", "b", "c"} and term == {"a": False, "b": False, "c": True}
    assert env.agents == ["a", "b"]

    # Step 3: an action for the departed "c" is ignored.
    obs, rew, term, trunc, _ = env.step({"a": 0, "b": 2, "c": 3})
    assert set(rew) == {"a", "b"} and rew == {"a": 0.0, "b": 2.0}

    # Step 4: the episode ends by truncation.
    obs, rew, term, trunc, _ = env.step({"a": 1, "b": 1})
    assert trunc == {"a": True, "b": True} and term == {"a": False, "b": False}
    assert env.agents == []
    # The terminal observation (t = 4/4) when the env exposes its non-resetting step; else
    # jmarl's auto-reset has already produced the next episode's first one (t = 0).
    expected_t = 1.0 if expose_terminal else 0.0
    assert obs["a"][0] == expected_t and env.state()[0] == expected_t


def test_step_compiles_once_whatever_the_action_form() -> None:
    jenv = jmarl.make("simple_spread", num_agents=3)
    traces = []

    def counting_step(key: jax.Array, state: object, actions: jax.Array) -> tuple:
        traces.append(1)  # runs only while JAX traces
        return jenv.step(key, state, actions)

    env = to_pettingzoo(Env(jenv.spec, jenv.reset, counting_step), seed=0)
    forms = [1, np.int64(2), np.uint8(3), jnp.asarray(4, jnp.int32), np.array(0, np.int16)]
    for episode in range(2):
        env.reset()
        for t in range(25):
            env.step({a: forms[(t + episode) % len(forms)] for a in env.agents})
    assert len(traces) == 1


# --- pytree observations and actions ---------------------------------------------------------


def make_dict_env() -> Env:
    """Two agents observe ``{"t": Box(()), "id": Discrete(2)}`` and act with
    ``MultiDiscrete((2, 3))``; the reward is the sum of the action; episodes last 3 steps."""

    def ts(t: jax.Array, reward: jax.Array) -> TimeStep:
        done = t >= 3
        return TimeStep(
            obs={"t": jnp.full((2,), t / 3, jnp.float32), "id": jnp.arange(2, dtype=jnp.int32)},
            state=t[None].astype(jnp.float32),
            reward=reward,
            terminated=jnp.zeros(2, bool),
            truncated=jnp.broadcast_to(done, (2,)),
            done=done,
            alive=jnp.ones(2, bool),
            action_mask=None,
        )

    def reset(key: jax.Array) -> tuple[jax.Array, TimeStep]:
        t = jnp.zeros((), jnp.int32)
        return t, ts(t, jnp.zeros(2))

    def step(key: jax.Array, t: jax.Array, actions: jax.Array) -> tuple[jax.Array, TimeStep]:
        return t + 1, ts(t + 1, jnp.sum(actions, axis=-1).astype(jnp.float32))

    obs_space = spaces.Dict.from_mapping({"t": spaces.Box(0.0, 1.0, ()), "id": spaces.Discrete(2)})
    spec = EnvSpec(
        name="dict",
        agent_ids=("x", "y"),
        observation_space=obs_space,
        action_space=spaces.MultiDiscrete((2, 3)),
        state_space=spaces.Box(0.0, 3.0, (1,)),
        max_steps=3,
    )
    return Env(spec, reset, auto_reset(reset, step))


def test_dict_observations_and_multi_discrete_actions() -> None:
    env = to_pettingzoo(make_dict_env(), seed=0)
    parallel_api_test(env, num_cycles=10)
    obs, _ = env.reset()
    assert obs["y"]["id"].dtype == np.int32 and int(obs["y"]["id"]) == 1
    assert env.observation_space("x").contains(obs["x"])
    _, rew, *_ = env.step({"x": np.array([1, 2]), "y": [0, 1]})
    assert rew == {"x": 3.0, "y": 1.0}
    with pytest.raises(ValueError, match=r"agent 'x' is not in its action space MultiDiscrete"):
        env.step({"x": np.array([2, 0]), "y": [0, 0]})


def test_padded_box_actions_reach_the_env_in_the_stacked_layout() -> None:
    def ts(reward: jax.Array, done: jax.Array) -> TimeStep:
        no, yes = jnp.zeros(2, bool), jnp.ones(2, bool)
        trunc = jnp.broadcast_to(done, (2,))
        return TimeStep(jnp.zeros((2, 1)), jnp.zeros(1), reward, no, trunc, done, yes, None)

    def reset(key: jax.Array) -> tuple[jax.Array, TimeStep]:
        return jnp.zeros((), jnp.int32), ts(jnp.zeros(2), jnp.array(False))

    def step(key: jax.Array, t: jax.Array, actions: jax.Array) -> tuple[jax.Array, TimeStep]:
        reward = actions[:, 0] + 10 * actions[:, 1]  # [2, 2] stacked actions
        return t + 1, ts(reward, t + 1 >= 2)

    box = lambda n: spaces.Box(0.0, 1.0, (n,))
    spec = EnvSpec(
        name="pad",
        agent_ids=("p", "q"),
        observation_space=box(1),
        action_space=box(2),
        state_space=box(1),
        max_steps=2,
        agent_action_spaces=(box(1), box(2)),
    )
    env = to_pettingzoo(Env(spec, reset, auto_reset(reset, step)), seed=0)
    parallel_api_test(env, num_cycles=5)
    env.reset()
    assert env.action_space("p").shape == (1,) and env.action_space("q").shape == (2,)
    _, rew, *_ = env.step({"p": np.array([0.5]), "q": np.array([0.25, 1.0])})
    assert rew == {"p": 0.5, "q": 10.25}  # "p"'s padding is zero
    with pytest.raises(ValueError, match="agent 'p'"):
        env.step({"p": np.array([0.5, 0.5]), "q": np.array([0.25, 1.0])})
