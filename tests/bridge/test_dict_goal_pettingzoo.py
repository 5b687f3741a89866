"""``dict_goal`` (Dict observations with an image) through ``bridge.pettingzoo.to_pettingzoo``."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np

import jmarl
from bridge.pettingzoo.to_pettingzoo import to_pettingzoo

with warnings.catch_warnings():
    # pettingzoo.test imports connect_four_v3 the deprecated way on first import.
    warnings.filterwarnings("ignore", "The old environment creation API", DeprecationWarning)
    from pettingzoo.test import parallel_api_test


def test_parallel_api_test() -> None:
    env = to_pettingzoo(jmarl.make("dict_goal", num_agents=3, max_steps=10), seed=0)
    parallel_api_test(env, num_cycles=30)


def test_observations_are_gymnasium_dicts_with_the_mask() -> None:
    env = to_pettingzoo(jmarl.make("dict_goal", num_agents=2), seed=0)
    space = env.observation_space("agent_0")
    assert isinstance(space, gymnasium.spaces.Dict)
    assert list(space) == ["action_mask", "image", "position", "target"]
    assert space["image"].shape == (8, 8, 1) and space["image"].dtype == np.uint8
    obs, infos = env.reset(seed=3)
    assert space.contains(obs["agent_0"])
    np.testing.assert_array_equal(obs["agent_0"]["action_mask"], infos["agent_0"]["action_mask"])
