"""The ``dict_goal`` environment and the ``zero_observation`` ablation wrapper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.env.dict_goal import DictGoalState, dict_goal_step, oracle_policy
from jmarl.env.wrappers import zero_observation
from jmarl.run.config import RunConfig
from jmarl.run.driver import build_env
from jmarl.testing import check_env


def test_check_env() -> None:
    check_env(jmarl.make("dict_goal", num_agents=3, max_steps=10), jax.random.key(0), 25)


def test_step_rewards_and_observations_by_hand() -> None:
    # landmark (3, 3); targets = landmark + 2 * [(-1,-1), (1,-1), (-1,1), (1,1)]
    state = DictGoalState(
        pos=jnp.array([[5, 4], [0, 0], [7, 7]], jnp.int32),
        landmark=jnp.array([3, 3], jnp.int32),
        target_id=jnp.array([3, 0, 1], jnp.int32),  # targets (5, 5), (1, 1), (5, 1)
        step=jnp.zeros((), jnp.int32),
    )
    actions = jnp.array([4, 1, 3], jnp.int32)  # +y, -x (off the grid: stays), -y
    new, ts = dict_goal_step(jax.random.key(0), state, actions, grid_size=8, max_steps=25)
    np.testing.assert_array_equal(new.pos, [[5, 5], [0, 0], [7, 6]])
    # d: 1 -> 0 (on target, +1), 2 -> 2, 8 -> 7; shaping 0.5 per cell of progress
    np.testing.assert_allclose(ts.reward, [1.0 + 0.5, 0.0, 0.5])
    image = np.asarray(ts.obs["image"])
    assert image.shape == (3, 8, 8, 1) and image.dtype == np.uint8
    assert image[:, 3, 3, 0].tolist() == [255] * 3 and image.sum() == 3 * 255
    np.testing.assert_allclose(ts.obs["position"], np.array([[5, 5], [0, 0], [7, 6]]) / 7)
    np.testing.assert_array_equal(ts.obs["target"], [3, 0, 1])
    # the mask is in the observation and in ts.action_mask: no-op, -x, +x, -y, +y
    np.testing.assert_array_equal(ts.obs["action_mask"], ts.action_mask.astype(np.int8))
    np.testing.assert_array_equal(ts.action_mask[1], [True, False, True, False, True])


def _mean_return(policy_kwargs: dict[str, bool], episodes: int = 256) -> float:
    env = jmarl.make("dict_goal", num_agents=2)

    def episode(key: jax.Array) -> jax.Array:
        state, _ = env.reset(key)

        def body(s: DictGoalState, k: jax.Array) -> tuple[DictGoalState, jax.Array]:
            s, ts = env.step(k, s, oracle_policy(s, **policy_kwargs))
            return s, ts.reward

        _, rewards = jax.lax.scan(body, state, jax.random.split(key, env.spec.max_steps))
        return rewards.sum(0).mean()

    keys = jax.random.split(jax.random.key(0), episodes)
    return float(jax.jit(jax.vmap(episode))(keys).mean())


def test_oracle_returns_match_the_documented_table() -> None:
    full, nearest = _mean_return({}), _mean_return({"know_target": False})
    assert 22.5 < full < 24.0, full  # 23.35 over 20,000 episodes
    assert 5.5 < nearest < 6.88, nearest  # 6.56; bound without the target number 6.88


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="discrete actions only"):
        jmarl.make("dict_goal", continuous_actions=True)
    with pytest.raises(ValueError, match="grid_size >= 5"):
        jmarl.make("dict_goal", grid_size=4)
    with pytest.raises(ValueError, match="bad arguments"):
        jmarl.make("dict_goal", num_targets=3)
    env = jmarl.make("dict_goal", num_agents=2)
    state, _ = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"int actions of shape \(2,\)"):
        env.step(jax.random.key(0), state, jnp.zeros((2,), jnp.float32))


def test_cli_builds_it_from_run_settings() -> None:
    env = build_env(RunConfig(env="dict_goal", agents=4, episode_length=9))
    assert env.spec.num_agents == 4 and env.spec.max_steps == 9
    assert "dict_goal" in jmarl.list_envs()


def test_zero_observation() -> None:
    env = jmarl.make("dict_goal", num_agents=2)
    blind = zero_observation(env, "image")
    _, ts = env.reset(jax.random.key(0))
    state, ts0 = blind.reset(jax.random.key(0))
    assert ts0.obs["image"].dtype == jnp.uint8 and not ts0.obs["image"].any()
    np.testing.assert_array_equal(ts0.obs["position"], ts.obs["position"])
    _, ts1 = blind.step(jax.random.key(1), state, jnp.zeros((2,), jnp.int32))
    assert not ts1.obs["image"].any()
    _, kept = zero_observation(env, "image", jnp.asarray(False)).reset(jax.random.key(0))
    np.testing.assert_array_equal(kept.obs["image"], ts.obs["image"])
    with pytest.raises(ValueError, match="no observation entry 'colour'"):
        zero_observation(env, "colour")
