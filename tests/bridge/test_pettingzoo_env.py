"""``EnhancedPettingZooEnv`` against real PettingZoo envs and Tianshou's unmodified Collector."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from mpe2 import simple_adversary_v3, simple_speaker_listener_v4, simple_spread_v3
from pettingzoo.utils.conversions import (
    aec_to_parallel_wrapper,
    turn_based_aec_to_parallel_wrapper,
)
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from bridge.pettingzoo import CycleParallelEnv, EnhancedPettingZooEnv

# --- env factories (module level so that SubprocVectorEnv's spawned workers can import them) --


def tictactoe() -> Any:
    return pettingzoo.make("aec", "classic/tictactoe-v3")


def connect_four() -> Any:
    return pettingzoo.make("aec", "classic/connect_four-v3")


def pistonball(kind: str, max_cycles: int = 8) -> Any:
    return pettingzoo.make(kind, "butterfly/pistonball-v6", n_pistons=4, max_cycles=max_cycles)


def kaz() -> Any:
    # line_death makes random agents die within ~150 cycles.
    return pettingzoo.make(
        "parallel", "butterfly/knights_archers_zombies-v11", line_death=True, max_cycles=400
    )


def spread_parallel() -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(simple_spread_v3.parallel_env(max_cycles=10))


def tictactoe_aec() -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(tictactoe())


def masked_choice(rng: np.random.Generator, mask: np.ndarray) -> int:
    legal = np.flatnonzero(mask)
    return int(rng.choice(legal)) if len(legal) else 0


class TwoAgentEnv(pettingzoo.ParallelEnv):
    """Two agents, 3 steps. Optionally agent "b" switches its observation space after step 1, or
    agent "a" silently leaves after step 1 while the env keeps reporting it (both misbehaviours).
    """

    metadata = {"name": "two_agent_v0", "is_parallelizable": True}  # noqa: RUF012

    def __init__(self, change_space: bool = False, drop_a: bool = False) -> None:
        self.possible_agents = ["a", "b"]
        self.render_mode = None
        self.change_space = change_space
        self.drop_a = drop_a
        self.closed = False
        self.received: list[dict] = []
        self._obs_spaces = {a: spaces.Box(-1.0, 1.0, (2,), np.float32) for a in "ab"}

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3)  # a fresh but equal object on every call

    def _obs(self) -> dict:
        shown = self.possible_agents if self.drop_a else self.agents
        return {a: np.full(self._obs_spaces[a].shape, self.t / 3, np.float32) for a in shown}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = ["a", "b"], 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, ...]:
        self.received.append(dict(actions))
        self.t += 1
        if self.change_space:
            self._obs_spaces["b"] = spaces.Box(-1.0, 1.0, (3,), np.float32)
        done = self.t >= 3
        rewards = {a: float(actions[a]) + 1 for a in self.agents}
        flags = {a: done for a in self.agents}
        if self.drop_a:
            if "a" not in self.agents:
                rewards["a"] = 1.0  # still reported after it left
            self.agents = ["b"]
        obs = self._obs()
        if done:
            self.agents = []
        return obs, rewards, flags, dict.fromkeys(flags, False), {a: {} for a in flags}

    def render(self) -> str:
        return "frame"

    def close(self) -> None:
        self.closed = True


class NestedDictEnv(pettingzoo.ParallelEnv):
    """Three agents with one nested Dict space (every leaf kind) and an ``action_mask`` key;
    agent "c" terminates after the first step. ``bad`` drops a nested key at step 2."""

    metadata = {"name": "nested_dict_v0", "is_parallelizable": True}  # noqa: RUF012

    def __init__(self, extra: spaces.Space | None = None, bad: bool = False) -> None:
        self.possible_agents = ["a", "b", "c"]
        self.render_mode = None
        self.bad = bad
        inner = {
            "pos": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "kind": spaces.Discrete(3, start=1),
        }
        parts = {
            "action_mask": spaces.Box(0, 1, (4,), np.int8),
            "image": spaces.Box(0, 255, (8, 8, 3), np.uint8),
            "goal": spaces.MultiDiscrete([3, 5]),
            "bits": spaces.MultiBinary(4),
            "me": spaces.Dict(inner),
        }
        if extra is not None:
            parts["extra"] = extra
        self.space = spaces.Dict(parts)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.space

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(4)

    def _obs(self, agent: str) -> dict:
        k = self.possible_agents.index(agent)
        obs = {
            "action_mask": np.array([1, k != 0, 1, self.t % 2], np.int8),
            "image": np.full((8, 8, 3), 10 * k + self.t, np.uint8),
            "goal": np.array([k, self.t % 5]),
            "bits": np.array([k & 1, 1, 0, self.t & 1], np.int8),
            "me": {"pos": np.array([k / 4, -self.t / 4], np.float32), "kind": 1 + k},
        }
        if "extra" in self.space.spaces:
            obs["extra"] = self.space["extra"].sample()
        if self.bad and self.t == 2:
            del obs["me"]["kind"]
        return obs

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = list(self.possible_agents), 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, ...]:
        self.t += 1
        terms = {a: a == "c" or self.t >= 3 for a in self.agents}
        obs = {a: self._obs(a) for a in self.agents}
        rewards = dict.fromkeys(self.agents, 1.0)
        truncs = dict.fromkeys(self.agents, False)
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not terms[a]]
        return obs, rewards, terms, truncs, infos


# --- construction and auto-detection -----------------------------------------------------------


def test_auto_detects_through_wrappers() -> None:
    aec = simple_spread_v3.env()
    assert isinstance(aec, OrderEnforcingWrapper)
    assert EnhancedPettingZooEnv(aec).mode == "aec"
    par = simple_spread_v3.parallel_env()
    assert isinstance(par, aec_to_parallel_wrapper)
    assert EnhancedPettingZooEnv(par).mode == "parallel"
    assert EnhancedPettingZooEnv(TwoAgentEnv()).mode == "parallel"


def test_tianshou_pettingzoo_env_is_unwrapped() -> None:
    from tianshou.env import PettingZooEnv

    inner = tictactoe()
    env = EnhancedPettingZooEnv(PettingZooEnv(inner))
    assert env.mode == "aec" and env.env is inner


@pytest.mark.parametrize(
    "make_aec",
    [
        lambda: simple_spread_v3.env(N=3, max_cycles=12),
        lambda: simple_adversary_v3.env(max_cycles=12),
        lambda: pistonball("aec", max_cycles=12),
        lambda: pettingzoo.make(
            "aec", "butterfly/knights_archers_zombies-v11", line_death=True, max_cycles=150
        ),
    ],
    ids=["spread", "adversary", "pistonball", "kaz_deaths"],
)
def test_cycle_parallel_env_steps_exactly_like_aec_to_parallel(make_aec: Any) -> None:
    """Same seed, same actions: identical observations, rewards, flags and infos."""
    ours, ref = CycleParallelEnv(make_aec()), aec_to_parallel_wrapper(make_aec())
    rng = np.random.default_rng(0)
    (obs_a, _), (obs_b, _) = ours.reset(seed=3), ref.reset(seed=3)
    steps = 0
    while ref.agents:
        assert ours.agents == ref.agents and obs_a.keys() == obs_b.keys()
        for agent in obs_b:
            np.testing.assert_array_equal(obs_a[agent], obs_b[agent])
        spaces_ = {a: ref.action_space(a) for a in ref.agents}
        actions = {a: int(rng.integers(sp.n)) if isinstance(sp, spaces.Discrete)
                   else rng.uniform(sp.low, sp.high).astype(sp.dtype)
                   for a, sp in spaces_.items()}  # fmt: skip
        out_a, out_b = ours.step(actions), ref.step(actions)
        obs_a, obs_b = out_a[0], out_b[0]
        for got, want in zip(out_a[1:], out_b[1:]):
            assert dict(got) == dict(want)
        steps += 1
    assert not ours.agents and steps > 5


def test_parallel_envs_from_parallel_wrapper_fn_are_stepped_without_double_observation() -> None:
    env = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(max_cycles=5))
    assert type(env.env) is CycleParallelEnv
    calls = []
    observe = env.env.aec_env.unwrapped.observe
    env.env.aec_env.unwrapped.observe = lambda agent: calls.append(agent) or observe(agent)
    env.reset(seed=0)
    calls.clear()
    env.step(np.zeros(3, np.int64))
    assert sorted(calls) == sorted(env.agents)  # once per agent and step


def test_conversions_between_modes() -> None:
    to_par = EnhancedPettingZooEnv(pistonball("aec"), mode="parallel")
    assert isinstance(to_par.env, aec_to_parallel_wrapper)  # is_parallelizable
    turn_based = EnhancedPettingZooEnv(tictactoe(), mode="parallel")
    assert isinstance(turn_based.env, turn_based_aec_to_parallel_wrapper)
    to_aec = EnhancedPettingZooEnv(TwoAgentEnv(), mode="aec")
    assert to_aec.mode == "aec" and isinstance(to_aec.env, pettingzoo.AECEnv)


class DuckParallelEnv:
    possible_agents = ["a"]  # noqa: RUF012

    def reset(self, seed: int | None = None) -> tuple[dict, dict]:
        return {"a": np.zeros(2)}, {"a": {}}


@pytest.mark.parametrize("mode", ["auto", "aec", "parallel"])
def test_non_pettingzoo_objects_raise_type_error(mode: str) -> None:
    with pytest.raises(TypeError, match="DuckParallelEnv"):
        EnhancedPettingZooEnv(DuckParallelEnv(), mode=mode)
    with pytest.raises(TypeError, match=r"builtins\.str"):
        EnhancedPettingZooEnv("simple_spread", mode=mode)


def test_unknown_mode_raises_value_error() -> None:
    with pytest.raises(ValueError, match="'joint'"):
        EnhancedPettingZooEnv(TwoAgentEnv(), mode="joint")


@pytest.mark.filterwarnings(
    # gymnasium's checker warns about by-design features: unbounded mpe2 observations, padded
    # entries with bounds [0, 0] and the reward vector.
    "ignore:.*A Box observation space (minimum|maximum) value is:UserWarning",
    "ignore:.*maximum and minimum values are equal:UserWarning",
    "ignore:.*The reward returned by .step... must be a float:UserWarning",
)
@pytest.mark.parametrize(
    "make",
    [
        simple_spread_v3.parallel_env,
        simple_spread_v3.env,
        functools.partial(simple_speaker_listener_v4.parallel_env, continuous_actions=True),
        functools.partial(pettingzoo.make, "parallel", "classic/rps-v2"),
        functools.partial(pistonball, "aec"),
    ],
    ids=["spread-parallel", "spread-aec", "speaker-listener-box", "rps", "pistonball-aec"],
)
def test_gymnasium_env_checker(make: Any) -> None:
    env = EnhancedPettingZooEnv(make())
    if env.mode == "aec":  # Tianshou's observation_space is one agent's, not the row's layout
        env = EnhancedPettingZooEnv(make(), agent_id="index")
    check_env(env, skip_render_check=True)


# --- parallel mode -------------------------------------------------------------------------------


def test_parallel_simple_spread_matches_mpe2() -> None:
    env = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(max_cycles=25))
    ref = simple_spread_v3.parallel_env(max_cycles=25)
    assert env.agents == ["agent_0", "agent_1", "agent_2"] and env.num_agents == 3
    assert env.observation_space["obs"].shape == (3, 18)
    assert env.observation_space["state"].shape == (54,)
    assert "mask" not in env.observation_space.spaces and not env.has_action_mask
    assert env.action_space == spaces.MultiDiscrete([5, 5, 5])
    assert env.agent_action_spaces["agent_1"] == spaces.Discrete(5)
    obs, info = env.reset(seed=3)
    ref_obs, _ = ref.reset(seed=3)
    rng = np.random.default_rng(0)
    for t in range(25):
        np.testing.assert_array_equal(obs["obs"], np.stack([ref_obs[a] for a in env.agents]))
        np.testing.assert_array_equal(obs["state"], ref.state())  # all observations, concatenated
        assert obs["alive"].all() and env.observation_space.contains(obs)
        action = rng.integers(0, 5, size=3)
        obs, reward, terminated, truncated, info = env.step(action)
        ref_obs, ref_rew, *_ = ref.step(dict(zip(env.agents, action.tolist())))
        assert reward.dtype == np.float32
        np.testing.assert_allclose(reward, [ref_rew[a] for a in env.agents], rtol=1e-6)
        assert not terminated and truncated == (t == 24)
    assert not obs["alive"].any() and info["truncated"].all() and not info["terminated"].any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, int))


def test_parallel_heterogeneous_observations_are_zero_padded() -> None:
    env = EnhancedPettingZooEnv(simple_adversary_v3.parallel_env())
    ref = simple_adversary_v3.parallel_env()
    assert env.agent_observation_spaces["adversary_0"].shape == (8,)
    assert env.observation_space["obs"].shape == (3, 10)
    obs, _ = env.reset(seed=1)
    ref_obs, _ = ref.reset(seed=1)
    np.testing.assert_array_equal(obs["obs"][0, :8], ref_obs["adversary_0"])
    np.testing.assert_array_equal(obs["obs"][0, 8:], 0.0)
    np.testing.assert_array_equal(obs["obs"][1], ref_obs["agent_0"])


def test_parallel_speaker_listener_discrete_padding_and_masks() -> None:
    env = EnhancedPettingZooEnv(simple_speaker_listener_v4.parallel_env())
    assert env.action_space == spaces.MultiDiscrete([5, 5]) and env.has_action_mask
    obs, _ = env.reset(seed=0)
    # speaker_0 has Discrete(3): its padded actions 3 and 4 are masked out.
    np.testing.assert_array_equal(obs["mask"], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert obs["obs"].shape == (2, 11)
    np.testing.assert_array_equal(obs["obs"][0, 3:], 0.0)
    with pytest.raises(ValueError, match="speaker_0"):
        env.step(np.array([3, 0]))
    obs, *_ = env.step(np.array([2, 4]))
    assert env.observation_space.contains(obs)


def test_parallel_speaker_listener_continuous_box_padding() -> None:
    env = EnhancedPettingZooEnv(simple_speaker_listener_v4.parallel_env(continuous_actions=True))
    assert env.action_space.shape == (2, 5)
    np.testing.assert_array_equal(env.action_space.high[0], [1, 1, 1, 0, 0])  # speaker: Box(3)
    received = []
    inner_step = env.env.step
    env.env.step = lambda actions: received.append(actions) or inner_step(actions)
    env.reset(seed=0)
    action = np.full((2, 5), 0.5, np.float32)
    env.step(action)
    assert received[0]["speaker_0"].shape == (3,) and received[0]["listener_0"].shape == (5,)
    with pytest.raises(ValueError, match=r"expected a joint action of shape \(2, 5\).*\(2, 3\)"):
        env.step(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(1, 5\)"):
        env.step(np.zeros((1, 5), np.float32))  # one agent's action missing


def test_parallel_bad_actions() -> None:
    env = EnhancedPettingZooEnv(TwoAgentEnv())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2,\).*\(1,\)"):
        env.step(np.array([1]))
    with pytest.raises(ValueError, match="'c'"):
        env.step({"a": 0, "b": 1, "c": 2})
    with pytest.raises(ValueError, match=r"\['b'\]"):
        env.step({"a": 0})
    with pytest.raises(ValueError, match="'a'"):
        env.step(np.array([5, 0]))
    with pytest.raises(ValueError, match="'b'"):
        env.step(np.array([0.0, 1.5]))
    _, reward, *_ = env.step({"a": 2, "b": np.int64(1)})
    np.testing.assert_array_equal(reward, [3.0, 2.0])


def test_agent_leaving_without_flag_counts_as_terminated() -> None:
    inner = TwoAgentEnv(drop_a=True)
    env = EnhancedPettingZooEnv(inner)
    env.reset(seed=0)
    obs, reward, *_, info = env.step(np.array([1, 1]))
    np.testing.assert_array_equal(reward, [2.0, 2.0])  # "a" acted in this step
    assert obs["alive"].tolist() == [False, True] and info["terminated"].tolist() == [True, False]
    obs, reward, terminated, _, info = env.step(np.array([2, 0]))  # "a"'s 2 is dropped
    assert inner.received[-1] == {"b": 0}
    np.testing.assert_array_equal(reward, [0.0, 1.0])  # the env's reward for "a" is ignored
    np.testing.assert_array_equal(obs["obs"][0], 0.0)  # and so is its observation
    assert not terminated


def test_space_change_mid_episode_raises_naming_the_agent() -> None:
    env = EnhancedPettingZooEnv(TwoAgentEnv(change_space=True))
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"'b' changed its observation space"):
        env.step(np.array([0, 0]))
    aec = EnhancedPettingZooEnv(TwoAgentEnv(change_space=True), mode="aec")
    aec.reset(seed=0)
    with pytest.raises(RuntimeError, match="'b'"):
        for _ in range(4):
            aec.step(0)


def test_render_close_and_seeding_pass_through() -> None:
    inner = TwoAgentEnv()
    env = EnhancedPettingZooEnv(inner)
    assert env.render() == "frame"
    env.close()
    assert inner.closed
    first = EnhancedPettingZooEnv(simple_spread_v3.parallel_env())
    second = EnhancedPettingZooEnv(simple_spread_v3.parallel_env())
    runs = []
    for env in (first, second, first):
        obs, _ = env.reset(seed=7)
        rows = [obs["obs"]]
        for t in range(10):
            obs, reward, *_ = env.step(np.array([t % 5, (t + 1) % 5, (t + 2) % 5]))
            rows += [obs["obs"], reward]
        runs.append(rows)
    for rows in runs[1:]:
        for got, want in zip(rows, runs[0]):
            np.testing.assert_array_equal(got, want)


def test_parallel_dead_agents_are_zeroed_and_ignored() -> None:
    env = EnhancedPettingZooEnv(kaz())
    received = []
    inner_step = env.env.step
    env.env.step = lambda actions: received.append(set(actions)) or inner_step(actions)
    obs, _ = env.reset(seed=0)
    assert obs["alive"].all() and env.has_state
    rng = np.random.default_rng(0)
    dead_seen = False
    for _ in range(400):
        alive_before = obs["alive"].copy()
        action = rng.integers(0, 6, size=env.num_agents)
        action[~alive_before] = 5  # any value: dead agents' actions are not passed on
        obs, reward, terminated, truncated, info = env.step(action)
        assert received[-1] == {a for a, alive in zip(env.agents, alive_before) if alive}
        gone = ~alive_before  # dead before this step
        np.testing.assert_array_equal(obs["obs"][gone], 0.0)
        np.testing.assert_array_equal(reward[gone], 0.0)
        assert not obs["alive"][gone].any() and info["terminated"][gone].all()
        dead_seen |= bool(gone.any())
        if terminated or truncated:
            break
    assert dead_seen and not obs["alive"].any()


def test_state_can_be_left_out() -> None:
    env = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(max_cycles=5), include_state=False)
    assert not env.has_state and env.state_space is None
    assert "state" not in env.observation_space.spaces
    env.env.state = lambda: pytest.fail("state() was called")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(3, np.int64))
    assert set(obs) == {"obs", "alive"}
    with_state = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(max_cycles=5))
    assert with_state.has_state and "state" in with_state.reset(seed=0)[0]


def test_parallel_rps_without_working_state() -> None:
    env = EnhancedPettingZooEnv(pettingzoo.make("parallel", "classic/rps-v2", max_cycles=5))
    assert not env.has_state and "state" not in env.observation_space.spaces  # state() TypeError
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["obs"], [[0, 0, 0, 1], [0, 0, 0, 1]])  # one-hot "none"
    obs, reward, *_ = env.step(np.array([0, 1]))  # rock loses to paper
    np.testing.assert_array_equal(reward, [-1, 1])
    np.testing.assert_array_equal(obs["obs"], [[0, 1, 0, 0], [1, 0, 0, 0]])  # opponent's move


def test_aec_state_is_every_agents_current_observation_where_the_env_has_no_state() -> None:
    env = EnhancedPettingZooEnv(tictactoe(), include_state=True)
    assert not env.has_state and env.state_space.shape == (2 * 18,)
    obs, _ = env.reset(seed=0)
    for move in (4, 0, 8):
        inner = env.env
        expected = [inner.observe(a)["observation"].astype(np.float32).ravel() for a in env.agents]
        np.testing.assert_array_equal(obs["state"], np.concatenate(expected))
        obs, *_ = env.step(move)
    assert obs["state"][:18].sum() == 3  # the board from the first player's side: 3 marks


def test_aec_state_is_the_envs_state_where_it_has_one() -> None:
    env = EnhancedPettingZooEnv(simple_spread_v3.env(max_cycles=5), include_state=True)
    assert env.has_state and env.state_space.shape == (54,)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        np.testing.assert_array_equal(obs["state"], env.env.state())
        obs, *_ = env.step(0)
    indexed = EnhancedPettingZooEnv(
        simple_spread_v3.env(max_cycles=5), include_state=True, agent_id="index"
    )
    assert indexed.observation_space.contains(indexed.reset(seed=0)[0])
    plain = EnhancedPettingZooEnv(simple_spread_v3.env(max_cycles=5))
    assert "state" not in plain.reset(seed=0)[0] and plain.state_space is None  # Tianshou's obs


def test_parallel_pistonball_converted_from_aec_matches_parallel_api() -> None:
    env = EnhancedPettingZooEnv(pistonball("aec", max_cycles=4), mode="parallel")
    ref = pistonball("parallel", max_cycles=4)
    assert env.observation_space["obs"].shape == (4, 457, 120, 3)
    assert env.observation_space["obs"].dtype == np.uint8 and env.has_state
    assert env.action_space.shape == (4, 1)
    obs, _ = env.reset(seed=5)
    ref.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(4):
        action = rng.uniform(-1, 1, size=(4, 1)).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        ref_obs, ref_rew, *_ = ref.step(dict(zip(env.agents, action)))
        np.testing.assert_array_equal(obs["obs"][2], ref_obs["piston_2"])
        np.testing.assert_allclose(reward, [ref_rew[a] for a in env.agents], rtol=1e-6)
        assert obs["state"].shape == (560, 240, 3)
    assert truncated and not terminated


def test_parallel_turn_based_tictactoe_masks() -> None:
    env = EnhancedPettingZooEnv(tictactoe(), mode="parallel")
    obs, _ = env.reset(seed=0)
    assert obs["obs"].shape == (2, 3, 3, 2) and obs["obs"].dtype == np.int8
    assert obs["mask"][0].all() and not obs["mask"][1].any()  # player_2 is not on turn
    obs, *_ = env.step(np.array([4, 0]))  # player_2's action is ignored by the env
    assert not obs["mask"][0].any() and obs["mask"][1].sum() == 8


# --- AEC mode --------------------------------------------------------------------------------


def run_aec(env: EnhancedPettingZooEnv, actions: list[Any], seed: int) -> list[dict[str, Any]]:
    """Steps ``env`` to the end of one episode; one dict per row (what the Collector stores)."""
    obs, _ = env.reset(seed=seed)
    rows = []
    for action in actions:
        next_obs, reward, terminated, truncated, info = env.step(action)
        rows.append(
            {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated}
            | {"info": info}
        )
        obs = next_obs
        if terminated or truncated:
            return rows
    raise AssertionError("the episode did not end")


def test_aec_tictactoe_loser_gets_its_reward_in_its_final_row() -> None:
    env = EnhancedPettingZooEnv(tictactoe())
    assert env.observation_space == tictactoe().observation_space("player_1")  # Tianshou's
    assert env.action_space == spaces.Discrete(9)
    # player_1 plays 0, 1, 2 (top row wins); player_2 plays 3, 4. The 0s are ignored final turns.
    rows = run_aec(env, [0, 3, 1, 4, 2, 0, 0], seed=0)
    ids = [row["obs"]["agent_id"] for row in rows]
    assert ids == ["player_1", "player_2"] * 3 + ["player_1"]  # Tianshou's agent_id values
    assert rows[0]["obs"]["obs"].shape == (3, 3, 2) and rows[0]["obs"]["mask"].all()
    assert rows[1]["obs"]["mask"].tolist() == [False] + [True] * 8
    for row in rows[:5]:  # moves: nothing was earned before them
        np.testing.assert_array_equal(row["reward"], [0, 0])
        assert not row["info"]["final"]
    loser = rows[5]  # player_2's last row: its final observation, reward -1, done
    np.testing.assert_array_equal(loser["reward"], [0, -1])
    assert loser["info"]["final"] and loser["info"]["terminated"][1]
    winner = rows[6]
    np.testing.assert_array_equal(winner["reward"], [1, 0])
    assert winner["info"]["final"] and winner["terminated"] and not winner["truncated"]
    np.testing.assert_array_equal(sum(row["reward"] for row in rows), [1, -1])


class AbruptEndAEC(pettingzoo.AECEnv):
    """Two agents alternate; ``a``'s third move ends the game and removes both agents at once.

    That move pays ``a`` +1 and ``b`` -2; ``b`` never acts again, so its -2 is still pending
    when the episode ends. Every earlier move pays the mover 0.5 and the other agent 0.25.
    """

    metadata = {"name": "abrupt_end_v0"}  # noqa: RUF012

    def __init__(self) -> None:
        self.possible_agents = ["a", "b"]
        self._obs = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._act = spaces.Discrete(2)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs

    def action_space(self, agent: str) -> spaces.Space:
        return self._act

    def observe(self, agent: str) -> np.ndarray:
        return np.array([self._moves / 10], np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.agents = list(self.possible_agents)
        self._moves = 0
        self.agent_selection = "a"
        zeros = dict.fromkeys(self.agents, 0.0)
        self.rewards, self._cumulative_rewards = dict(zeros), dict(zeros)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {agent: {} for agent in self.agents}

    def step(self, action: int) -> None:
        mover = self.agent_selection
        other = "b" if mover == "a" else "a"
        self._moves += 1
        if self._moves == 5:  # a's third move
            self.rewards = {mover: 1.0, other: -2.0}
            self.agents = []
        else:
            self.rewards = {mover: 0.5, other: 0.25}
            self.agent_selection = other
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {agent: {} for agent in self.agents}


def test_aec_rewards_pending_when_all_agents_leave_reach_the_last_row() -> None:
    env = EnhancedPettingZooEnv(AbruptEndAEC(), mode="aec", agent_id="index")
    rows = run_aec(env, [0] * 5, seed=0)
    assert [row["obs"]["agent_id"] for row in rows] == [0, 1, 0, 1, 0]
    # each row carries the mover's rewards since its previous action, e.g. a's second row:
    # 0.5 (its own move 1) + 0.25 (b's move 2)
    np.testing.assert_array_equal(rows[0]["reward"], [0, 0])
    np.testing.assert_array_equal(rows[1]["reward"], [0, 0.25])  # b: a's move 1 paid it 0.25
    np.testing.assert_array_equal(rows[2]["reward"], [0.75, 0])  # a: 0.5 + 0.25
    np.testing.assert_array_equal(rows[3]["reward"], [0, 0.75])
    # the last row: a's 0.75 + 1 and b's pending 0.5 (own move 4) - 2, flushed at the end
    np.testing.assert_array_equal(rows[4]["reward"], [1.75, -1.5])
    assert rows[4]["terminated"]
    total = sum(row["reward"] for row in rows)
    np.testing.assert_array_equal(
        total, [0.5 + 0.25 + 0.5 + 0.25 + 1.0, 0.25 + 0.5 + 0.25 + 0.5 - 2.0]
    )


def test_aec_final_turn_ignores_any_action() -> None:
    env = EnhancedPettingZooEnv(tictactoe())
    rows = run_aec(env, [0, 3, 1, 4, 2, None, "anything"], seed=0)
    assert rows[-1]["terminated"]


def test_aec_rejects_out_of_space_actions() -> None:
    env = EnhancedPettingZooEnv(tictactoe())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="player_1"):
        env.step(9)
    with pytest.raises(ValueError, match="player_1"):
        env.step(np.array([1, 2]))


def test_aec_connect_four_masks_and_returns() -> None:
    env = EnhancedPettingZooEnv(connect_four())
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=1)
    total, finals = np.zeros(2), 0
    for _ in range(60):
        agent = env.env.agent_selection
        if not env.env.terminations[agent]:  # the env's own mask, as bool
            env_mask = env.env.observe(agent)["action_mask"]
            np.testing.assert_array_equal(obs["mask"], env_mask.astype(bool))
        else:  # a final row: the action is ignored, so every action is allowed
            assert obs["mask"].all()
        obs, reward, terminated, truncated, info = env.step(masked_choice(rng, obs["mask"]))
        total += reward
        finals += info["final"]
        if terminated or truncated:
            break
    assert terminated and finals == 2  # one final row per agent
    assert total.sum() == 0 and set(total.tolist()) <= {-1.0, 0.0, 1.0}


def test_aec_heterogeneous_speaker_listener() -> None:
    env = EnhancedPettingZooEnv(simple_speaker_listener_v4.env(max_cycles=3), agent_id="index")
    assert env.observation_space["obs"].shape == (11,)
    assert env.action_space == spaces.Discrete(5)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    seen = set()
    while True:
        assert env.observation_space.contains(obs)
        k = obs["agent_id"]
        seen.add(k)
        if k == 0:  # the speaker: 3 observations and 3 actions, padded
            np.testing.assert_array_equal(obs["obs"][3:], 0.0)
            np.testing.assert_array_equal(obs["mask"], [1, 1, 1, 0, 0])
        obs, _, terminated, truncated, _ = env.step(masked_choice(rng, obs["mask"]))
        if terminated or truncated:
            break
    assert seen == {0, 1} and truncated


def test_aec_continuous_actions() -> None:
    tianshou_like = EnhancedPettingZooEnv(simple_speaker_listener_v4.env(continuous_actions=True))
    assert set(tianshou_like.reset(seed=0)[0]) == {"agent_id", "obs"}  # no mask, as Tianshou's
    env = EnhancedPettingZooEnv(
        simple_speaker_listener_v4.env(continuous_actions=True), agent_id="index"
    )
    obs, _ = env.reset(seed=0)
    assert env.action_space == spaces.Box(0.0, 1.0, (5,), np.float32)
    assert obs["mask"].tolist() == [True]  # placeholder: no action mask for Box actions
    obs, *_ = env.step(np.full(5, 0.5, np.float32))  # the speaker gets the first 3 entries
    obs, *_ = env.step(np.full(5, 0.5, np.float32))
    with pytest.raises(ValueError, match="speaker_0"):
        env.step(np.zeros(4, np.float32))


def test_aec_pistonball_each_piston_rows_carry_its_own_reward() -> None:
    """Compares every row with a plain PettingZoo loop over the same actions (B6)."""
    turns = 8 * 4 + 4  # 8 cycles of 4 pistons, then each piston's final (truncated) turn
    actions = np.random.default_rng(0).uniform(-1, 1, size=(turns, 1)).astype(np.float32)
    ref = pistonball("aec")
    ref.reset(seed=2)
    expected = []  # (agent, reward since its previous action, done) at each turn
    for t, agent in enumerate(ref.agent_iter()):
        _, cum_reward, term, trunc, _ = ref.last()
        expected.append((agent, cum_reward, term or trunc))
        ref.step(None if term or trunc else actions[t])
    assert len(expected) == turns

    env = EnhancedPettingZooEnv(pistonball("aec"), agent_id="index")
    rows = run_aec(env, list(actions), seed=2)
    assert len(rows) == turns
    for row, (agent, cum_reward, done) in zip(rows, expected):
        k = row["obs"]["agent_id"]
        assert env.agents[k] == agent and row["info"]["final"] == done
        assert row["reward"][k] == pytest.approx(cum_reward, rel=1e-6)
        others = np.delete(row["reward"], k)
        np.testing.assert_array_equal(others, 0.0)
    piston_0 = [row["reward"][0] for row in rows if row["obs"]["agent_id"] == 0]
    assert np.count_nonzero(piston_0) >= 7  # Tianshou's PettingZooEnv gives piston_0 only zeros
    assert rows[-1]["truncated"] and not rows[-1]["terminated"]
    assert all(rows[-1]["info"]["truncated"])


def test_aec_dead_agents_get_one_final_row_each() -> None:
    env = EnhancedPettingZooEnv(kaz(), mode="aec", agent_id="index")
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    ids, finals = [], []
    for _ in range(4 * 400 + 4):
        ids.append(obs["agent_id"])
        obs, _, terminated, truncated, info = env.step(masked_choice(rng, obs["mask"]))
        if info["final"]:
            finals.append(len(ids) - 1)
        if terminated or truncated:
            break
    assert terminated or truncated
    assert sorted(ids[i] for i in finals) == list(range(env.num_agents))  # one each
    first_dead = ids[finals[0]]
    assert finals[0] < len(ids) - env.num_agents  # died while the others kept playing
    assert first_dead not in ids[finals[0] + 1 :]  # and never came back


# --- Tianshou's unmodified Collector -------------------------------------------------------


def random_policy(env: EnhancedPettingZooEnv) -> Any:
    import torch  # noqa: F401  (tianshou needs it; imported here to keep collection light)
    from tianshou.algorithm.algorithm_base import Policy
    from tianshou.data import Batch

    class MaskedRandomPolicy(Policy):
        """Uniform over legal actions; one row per env (AEC) or one row of N agents (parallel)."""

        def __init__(self) -> None:
            super().__init__(action_space=env.action_space, observation_space=None)
            self.rng = np.random.default_rng(0)

        def forward(self, batch: Any, state: Any = None, **kwargs: Any) -> Any:
            obs = batch.obs
            if env.mode == "aec":
                act = np.array([masked_choice(self.rng, m) for m in obs.mask])
            else:
                nvec = env.action_space.nvec  # simple_spread has no action mask
                act = self.rng.integers(0, nvec, size=(len(obs.alive), len(nvec)))
            return Batch(act=act, state=state)

    return MaskedRandomPolicy()


@pytest.mark.parametrize("vector", ["dummy", "subproc"])
@pytest.mark.parametrize("factory", [spread_parallel, tictactoe_aec], ids=["parallel", "aec"])
def test_tianshou_collector(vector: str, factory: Any) -> None:
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv, SubprocVectorEnv

    fns = [factory, factory]
    if vector == "dummy":
        venv = DummyVectorEnv(fns)
    else:  # spawn: forking a process with JAX threads running can deadlock
        venv = SubprocVectorEnv(fns, context="spawn")
    env = factory()
    buffer = VectorReplayBuffer(total_size=200, buffer_num=2)  # the default would be 20,000 rows
    try:
        collector = Collector(random_policy(env), venv, buffer)
        collector.reset()
        stats = collector.collect(n_step=60)
    finally:
        venv.close()
    assert stats.n_collected_steps == 60 and len(buffer) == 60
    assert buffer.rew.shape[1] == env.num_agents  # (Tianshou stores rewards as float64)
    assert stats.n_collected_episodes > 0
    if env.mode == "aec":
        stored = buffer[buffer.sample_indices(0)]
        assert set(stored.obs.agent_id.tolist()) == set(env.agents)  # Tianshou's names
        assert buffer.obs.mask.shape[1:] == (9,)
        assert np.all(stats.returns.sum(axis=1) == 0)  # zero-sum game: exact per-agent returns
    else:
        assert buffer.obs.obs.shape[1:] == (3, 18) and buffer.obs.state.shape[1:] == (54,)
        assert stats.returns.shape == (stats.n_collected_episodes, 3)
        assert bool(buffer.info.alive.any())


# --- Dict observations --------------------------------------------------------------------------


def _without_mask(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k != "action_mask"}


def _assert_tree_equal(got: Any, want: Any) -> None:
    if isinstance(want, dict):
        assert set(got) == set(want)
        for key in want:
            _assert_tree_equal(got[key], want[key])
    else:
        np.testing.assert_array_equal(got, want)


def test_parallel_dict_observations_stay_dicts_with_an_agent_axis() -> None:
    raw_env = NestedDictEnv()
    env = EnhancedPettingZooEnv(raw_env)
    assert env.dict_observations and env.has_action_mask
    space = env.observation_space["obs"]
    assert sorted(space.spaces) == ["bits", "goal", "image", "me"]  # the mask travels apart
    assert space["image"].shape == (3, 8, 8, 3) and space["image"].dtype == np.uint8
    assert space["me"]["kind"].shape == (3,) and space["goal"].shape == (3, 2)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    raw_env.t = 0
    for k, agent in enumerate(env.agents):
        want = _without_mask(raw_env._obs(agent))
        _assert_tree_equal({key: _index(obs["obs"], k)[key] for key in want}, want)
    np.testing.assert_array_equal(obs["mask"][0], [1, 0, 1, 0])  # from the action_mask key
    obs, *_ = env.step(np.zeros(3, np.int64))  # "c" terminates in this step
    assert env.observation_space.contains(obs) and not obs["alive"][2]
    obs, *_ = env.step(np.zeros(3, np.int64))
    dead = _index(obs["obs"], 2)  # "c" is dead: zeros, or the lowest value if 0 is outside
    assert int(dead["me"]["kind"]) == 1  # Discrete(3, start=1)
    dead["me"]["kind"] = 0
    for leaf in _leaves(dead):
        np.testing.assert_array_equal(leaf, 0)
    assert env.observation_space.contains(obs)


def _index(tree: Any, k: int) -> Any:
    return {key: _index(v, k) for key, v in tree.items()} if isinstance(tree, dict) else tree[k]


def _leaves(tree: Any) -> list:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    return [tree]


def test_aec_dict_observations_are_the_agents_own_dicts() -> None:
    env = EnhancedPettingZooEnv(NestedDictEnv(), mode="aec", agent_id="index")
    assert env.dict_observations
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["obs"]["image"].shape == (8, 8, 3) and int(obs["obs"]["me"]["kind"]) == 1
    np.testing.assert_array_equal(obs["mask"], [1, 0, 1, 0])
    assert env.policy_observation_space() == env.observation_space


def test_dict_observations_can_be_flattened() -> None:
    env = EnhancedPettingZooEnv(NestedDictEnv(), dict_observations="flatten")
    assert not env.dict_observations
    width = spaces.flatdim(_without_mask_space(NestedDictEnv().space))
    assert env.observation_space["obs"].shape == (3, width)
    obs, _ = env.reset(seed=0)
    assert obs["obs"].dtype == np.float32 and env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs["mask"][0], [1, 0, 1, 0])
    with pytest.raises(ValueError, match="dict_observations must be 'keep' or 'flatten'"):
        EnhancedPettingZooEnv(NestedDictEnv(), dict_observations="stack")


def _without_mask_space(space: spaces.Dict) -> spaces.Dict:
    return spaces.Dict({k: v for k, v in space.spaces.items() if k != "action_mask"})


def test_dicts_with_parts_that_are_not_arrays_are_flattened() -> None:
    extra = spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (1,), np.float32)))
    env = EnhancedPettingZooEnv(NestedDictEnv(extra=extra))
    assert not env.dict_observations and env.observation_space["obs"].dtype == np.float32


def test_a_dict_observation_with_a_missing_key_names_the_key_path() -> None:
    env = EnhancedPettingZooEnv(NestedDictEnv(bad=True))
    env.reset(seed=0)
    env.step(np.zeros(3, np.int64))
    with pytest.raises(RuntimeError, match=r"agent 'a' returned observation\['me'\] with keys"):
        env.step(np.zeros(3, np.int64))


def test_policy_observation_space_is_each_agents_own_entry() -> None:
    env = EnhancedPettingZooEnv(NestedDictEnv())
    space = env.policy_observation_space("b")
    assert set(space.spaces) == {"agent_id", "obs", "mask"}
    assert space["obs"] == _without_mask_space(NestedDictEnv().space)
    assert space["mask"].shape == (4,) and space["agent_id"] == spaces.Discrete(3)
    spread = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(N=3))
    assert spread.policy_observation_space() == spread.padded_observation_space  # no masks
    mixed = EnhancedPettingZooEnv(simple_adversary_v3.parallel_env())
    own = mixed.policy_observation_space("adversary_0")
    assert own.shape == mixed.agent_observation_spaces["adversary_0"].shape  # not the padding


@pytest.mark.parametrize(
    ("own", "blank"),
    [
        (spaces.Discrete(3, start=1), 1),
        (spaces.Discrete(3, start=-1), 0),
        (spaces.Discrete(2, start=-5), -4),
        (spaces.MultiDiscrete([3, 4], start=[2, -1]), [2, 0]),
        (spaces.Box(1.0, 2.0, (2,), np.float32), [1.0, 1.0]),
        (spaces.Box(-1.0, 1.0, (2,), np.float32), [0.0, 0.0]),
        (spaces.MultiBinary(3), [0, 0, 0]),
    ],
)
def test_blank_entries_are_the_value_nearest_zero_inside_the_space(own: Any, blank: Any) -> None:
    from bridge.pettingzoo.layout import blank_tree as _blank_tree
    from bridge.pettingzoo.layout import stacked_space as _stacked_space

    stacked = _stacked_space(own, 2)
    got = _blank_tree(stacked, own)
    np.testing.assert_array_equal(got, [blank, blank])
    assert stacked.contains(got) and all(own.contains(row.astype(own.dtype)) for row in got)
