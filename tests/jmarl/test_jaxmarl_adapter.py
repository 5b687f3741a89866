"""A JaxMARL-style env (written here from scratch) trains through ``from_jaxmarl``."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.env.jaxmarl_adapter import convert_space, from_jaxmarl
from jmarl.testing import check_env


class _Discrete(NamedTuple):
    n: int


class _Box(NamedTuple):
    low: float
    high: float
    shape: tuple[int, ...]


class _State(NamedTuple):
    target: jax.Array  # int32[2]
    t: jax.Array


class GuessEnv:
    """Two agents each see a one-hot target (sizes 2 and 3, padded differently) and are paid
    1 for choosing it. Episodes last 4 steps; ``step`` auto-resets like JaxMARL's."""

    agents: ClassVar[list[str]] = ["red", "blue"]
    max_steps = 4
    sizes: ClassVar[dict[str, int]] = {"red": 2, "blue": 3}

    def observation_space(self, agent: str) -> _Box:
        return _Box(0.0, 1.0, (self.sizes[agent] + 1,))

    def action_space(self, agent: str) -> _Discrete:
        return _Discrete(self.sizes[agent])

    def _obs(self, s: _State) -> dict[str, jax.Array]:
        out = {}
        for i, a in enumerate(self.agents):
            one_hot = jax.nn.one_hot(s.target[i], self.sizes[a])
            out[a] = jnp.concatenate([one_hot, jnp.array([1.0])])
        return out

    def reset(self, key: jax.Array) -> tuple[dict, _State]:
        k1, k2 = jax.random.split(key)
        s = _State(
            jnp.stack([jax.random.randint(k1, (), 0, 2), jax.random.randint(k2, (), 0, 3)]),
            jnp.zeros((), jnp.int32),
        )
        return self._obs(s), s

    def step(self, key: jax.Array, s: _State, actions: dict) -> tuple[Any, ...]:
        rew = {
            a: (actions[a] == s.target[i]).astype(jnp.float32) for i, a in enumerate(self.agents)
        }
        s2 = _State(s.target, s.t + 1)
        done = s2.t >= self.max_steps
        obs_reset, s_reset = self.reset(key)
        s_out = jax.tree.map(lambda a, b: jnp.where(done, a, b), s_reset, s2)
        obs = jax.tree.map(lambda a, b: jnp.where(done, a, b), obs_reset, self._obs(s2))
        dones = {a: done for a in self.agents} | {"__all__": done}
        return obs, s_out, rew, dones, {}


def test_spec_pads_observations_and_masks_padded_actions() -> None:
    env = from_jaxmarl(GuessEnv())
    spec = env.spec
    assert spec.agent_ids == ("red", "blue") and spec.max_steps == 4
    assert spec.observation_space == jmarl.spaces.Box(-np.inf, np.inf, (4,))
    assert spec.action_space == jmarl.spaces.Discrete(3)
    assert spec.agent_action_spaces == (jmarl.spaces.Discrete(2), jmarl.spaces.Discrete(3))
    _, ts = env.reset(jax.random.key(0))
    assert ts.obs.shape == (2, 4) and float(ts.obs[0, 3]) == 0.0  # red padded with a zero
    np.testing.assert_array_equal(ts.action_mask, [[True, True, False], [True, True, True]])
    check_env(env, jax.random.key(1))


def test_sharing_across_different_spaces_is_refused() -> None:
    env = from_jaxmarl(GuessEnv())
    with pytest.raises(ValueError, match="spaces differ"):
        jmarl.make_ppo(env, jmarl.PPOConfig(), 1000, "shared")


def test_independent_ippo_learns_the_guess_game() -> None:
    env = from_jaxmarl(GuessEnv())
    cfg = jmarl.ppo_config_for(
        "ippo", jmarl.PPOConfig(num_envs=16, rollout_length=8, hidden_sizes=(16,), lr=3e-3)
    )
    out = jax.jit(jmarl.make_ppo(env, cfg, 20_000, "independent").train)(jax.random.key(0))
    ret = np.asarray(out.metrics["episode_return"])
    # random play: red 4*1/2, blue 4*1/3 -> mean 1.67; perfect play: 4.0
    assert ret[:3].mean() < 2.2 and ret[-5:].mean() > 3.6


class _MultiDiscrete:
    def __init__(self, num_categories: list[int]) -> None:
        self.num_categories = jnp.array(num_categories)
        self.shape = (len(num_categories),)


class NoMaskGuessEnv(GuessEnv):
    """JaxMARL's base class defines ``get_avail_actions`` only to raise."""

    def get_avail_actions(self, state: _State) -> dict:
        raise NotImplementedError


def test_get_avail_actions_that_raises_means_every_action_is_available() -> None:
    env = from_jaxmarl(NoMaskGuessEnv())
    _, ts = jax.jit(env.reset)(jax.random.key(0))
    np.testing.assert_array_equal(ts.action_mask, [[True, True, False], [True, True, True]])
    check_env(env, jax.random.key(1))


class MaskedGuessEnv(GuessEnv):
    def get_avail_actions(self, s: _State) -> dict:
        return {"red": jnp.array([True, False]), "blue": s.target[1] == jnp.arange(3)}


def test_get_avail_actions_gives_the_mask_padded_to_the_largest_action_space() -> None:
    _, ts = from_jaxmarl(MaskedGuessEnv()).reset(jax.random.key(0))
    target = int(np.argmax(np.asarray(ts.obs[1, :3])))
    np.testing.assert_array_equal(ts.action_mask[0], [True, False, False])
    np.testing.assert_array_equal(ts.action_mask[1], np.arange(3) == target)


def test_a_mask_of_the_wrong_shape_is_refused_when_wrapping() -> None:
    class Bad(GuessEnv):
        def get_avail_actions(self, s: _State) -> dict:
            return {"red": jnp.ones(3, bool), "blue": jnp.ones(3, bool)}

    with pytest.raises(ValueError, match=r"get_avail_actions\(state\)\['red'\] has shape \(3,\)"):
        from_jaxmarl(Bad())


def test_episodes_are_truncated_at_max_steps_when_the_env_runs_longer() -> None:
    env = from_jaxmarl(GuessEnv(), max_steps=3)
    state, _ = env.reset(jax.random.key(0))
    step = jax.jit(env.step)
    actions = jnp.zeros(2, jnp.int32)
    for t in range(1, 4):
        state, ts = step(jax.random.key(t), state, actions)
        assert bool(ts.done) == (t == 3)
    assert ts.truncated.all() and not ts.terminated.any() and int(state.t) == 0
    check_env(env, jax.random.key(1), num_steps=10)


def test_spaces_are_read_by_duck_typing() -> None:
    box = _Box(0.0, 1.0, np.int64(5))  # type: ignore[arg-type]  # Hanabi's bare numpy shape
    assert convert_space(box) == jmarl.spaces.Box(0.0, 1.0, (5,))
    assert convert_space(_Discrete(np.int64(4))) == jmarl.spaces.Discrete(4)  # type: ignore[arg-type]
    assert convert_space(_MultiDiscrete([2, 3])) == jmarl.spaces.MultiDiscrete((2, 3))
    image = _Box(0, 255, (2, 2))
    assert convert_space({"img": image, "id": _Discrete(3)}) == jmarl.spaces.Dict.from_mapping(
        {"img": jmarl.spaces.Box(0.0, 255.0, (2, 2)), "id": jmarl.spaces.Discrete(3)}
    )


def test_spaces_that_cannot_be_stacked_name_the_agents() -> None:
    class Mixed(GuessEnv):
        def observation_space(self, agent: str) -> Any:
            return _MultiDiscrete([2, 2]) if agent == "red" else super().observation_space(agent)

    with pytest.raises(ValueError, match=r"observation spaces differ .*red: MultiDiscrete"):
        from_jaxmarl(Mixed())


class ReachEnv:
    """Continuous actions of two sizes (1 and 2, bounds [0, 1]); the reward is the sum of the
    action the env received, so it shows the adapter's cutting and clipping. Agent ``b``
    stops (its own done) after 2 steps; the episode ends after 3."""

    agents: ClassVar[list[str]] = ["a", "b"]
    max_steps = 3
    sizes: ClassVar[dict[str, int]] = {"a": 1, "b": 2}

    def observation_space(self, agent: str) -> _Box:
        return _Box(0.0, 10.0, (1,))

    def action_space(self, agent: str) -> _Box:
        return _Box(0.0, 1.0, (self.sizes[agent],))

    def reset(self, key: jax.Array) -> tuple[dict, jax.Array]:
        t = jnp.zeros((), jnp.int32)
        return {a: jnp.zeros(1) for a in self.agents}, t

    def step(self, key: jax.Array, t: jax.Array, actions: dict) -> tuple[Any, ...]:
        assert actions["a"].shape == (1,) and actions["b"].shape == (2,)
        t = t + 1
        done = t >= 3
        rew = {a: jnp.sum(actions[a]) for a in self.agents}
        dones = {"a": done, "b": t >= 2, "__all__": done}
        obs = {a: jnp.full(1, jnp.where(done, 0, t), jnp.float32) for a in self.agents}
        return obs, jnp.where(done, 0, t), rew, dones, {}


def test_continuous_actions_are_cut_to_each_agent_and_clipped_and_agents_die() -> None:
    env = from_jaxmarl(ReachEnv())
    assert env.spec.action_space == jmarl.spaces.Box(0.0, 1.0, (2,))
    state, ts = env.reset(jax.random.key(0))
    actions = jnp.array([[2.0, 5.0], [-1.0, 0.5]])  # a gets [2] -> 1; b gets [0, 0.5]
    alive = []
    for t in range(3):
        state, ts = env.step(jax.random.key(t), state, actions)
        alive.append(np.asarray(ts.alive).tolist())
    np.testing.assert_allclose(ts.reward, [1.0, 0.5])
    # b's own done at step 2 kills it; the episode's end at step 3 revives both
    assert alive == [[True, True], [True, False], [True, True]]
    check_env(env, jax.random.key(1))


def test_observations_not_keyed_by_agent_are_refused_when_wrapping() -> None:
    class Stacked(GuessEnv):  # like JaxMARL's STORM (InTheGrid): one dict for all agents
        def reset(self, key: jax.Array) -> tuple[dict, _State]:
            _, s = super().reset(key)
            return {"observations": jnp.zeros((2, 4))}, s

    with pytest.raises(ValueError, match=r"observation is not keyed by agent: no entry .*'red'"):
        from_jaxmarl(Stacked())


class StackedObsEnv:
    """Like JaxMARL's storm_np: agents are the ints 0..N-1, the observation is one ``[N, 3]``
    array and the rewards one ``[N]`` array, so ``obs[agent]`` indexes by position. Each agent
    is paid for naming its one-hot target; episodes last 2 steps."""

    agents: ClassVar[list[int]] = [0, 1]
    max_steps = 2

    def observation_space(self, agent: int) -> _Box:
        return _Box(0.0, 1.0, (3,))

    def action_space(self, agent: int) -> _Discrete:
        return _Discrete(3)

    def reset(self, key: jax.Array) -> tuple[jax.Array, _State]:
        s = _State(jax.random.randint(key, (2,), 0, 3), jnp.zeros((), jnp.int32))
        return jax.nn.one_hot(s.target, 3), s

    def step(self, key: jax.Array, s: _State, actions: dict) -> tuple[Any, ...]:
        rew = (jnp.stack([actions[0], actions[1]]) == s.target).astype(jnp.float32)
        done = s.t + 1 >= self.max_steps
        obs_reset, s_reset = self.reset(key)
        s2 = jax.tree.map(lambda a, b: jnp.where(done, a, b), s_reset, _State(s.target, s.t + 1))
        obs = jnp.where(done, obs_reset, jax.nn.one_hot(s.target, 3))
        return obs, s2, rew, {"__all__": done}, {}


def test_observations_stacked_in_one_array_are_indexed_by_agent_position() -> None:
    env = from_jaxmarl(StackedObsEnv())
    assert env.spec.agent_ids == ("0", "1")
    state, ts = env.reset(jax.random.key(0))
    assert ts.obs.shape == (2, 3) and ts.state.shape == (6,)
    target = np.argmax(np.asarray(ts.obs), axis=-1)
    _, ts = env.step(jax.random.key(1), state, jnp.asarray(target, jnp.int32))
    np.testing.assert_array_equal(ts.reward, [1.0, 1.0])
    check_env(env, jax.random.key(1))
