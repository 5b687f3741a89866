"""A JaxMARL-style env (written here from scratch) trains through ``from_jaxmarl``."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.env.jaxmarl_adapter import from_jaxmarl
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
