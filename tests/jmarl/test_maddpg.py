"""MADDPG: the per-agent joint action of the actor loss by hand, action codecs (bounds,
straight-through Gumbel-softmax, masks), decentralised actors vs centralised critics, and bad
input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.algos.maddpg import MADDPGConfig, make
from jmarl.algos.maddpg.networks import make_codec, make_networks
from jmarl.algos.maddpg.update import own_action_joint
from jmarl.config_check import ConfigError
from jmarl.critics import joint_action_features
from jmarl.env import spaces
from jmarl.testing import make_probe_env


def test_each_agents_row_refreshes_only_its_own_action() -> None:
    mine = jnp.array([[[1.0], [2.0], [3.0]]])  # [B=1, N=3, K=1]
    stored = jnp.array([[[-1.0], [-2.0], [-3.0]]])
    joint = own_action_joint(mine, stored)
    assert joint[0].tolist() == [[1.0, -2.0, -3.0], [-1.0, 2.0, -3.0], [-1.0, -2.0, 3.0]]
    assert joint_action_features(stored)[0].tolist() == [[-1.0, -2.0, -3.0]] * 3


def test_continuous_actions_stay_in_bounds_and_noise_explores() -> None:
    codec = make_codec(spaces.Box(-2.0, 1.0, (4,)), 1.0)
    out = jnp.array([[-50.0, 0.0, 50.0, 0.3]])
    mask = jnp.ones((1, 4), bool)
    greedy = codec.act(out, jax.random.key(0), jnp.float32(0.0), mask, True)
    np.testing.assert_allclose(greedy[0, :3], [-2.0, -0.5, 1.0], atol=1e-6)  # -2 + (tanh+1)*1.5
    noisy = jax.vmap(lambda k: codec.act(out, k, jnp.float32(1.0), mask, False))(
        jax.random.split(jax.random.key(1), 200)
    )
    assert float(noisy.min()) >= -2.0 and float(noisy.max()) <= 1.0
    assert float(noisy[:, 0, 1].std()) > 0.5  # exploration happens


def test_discrete_relaxation_is_one_hot_forward_with_a_gradient_and_respects_the_mask() -> None:
    codec = make_codec(spaces.Discrete(3), 1.0)
    out = jnp.array([[0.0, 5.0, 1.0]])
    mask = jnp.array([[True, False, True]])
    y = codec.relaxed(out, jax.random.key(0), mask)
    assert sorted(np.asarray(y).ravel().round(6).tolist()) == [0.0, 0.0, 1.0]
    assert float(y[0, 1]) == 0.0  # the masked action is never picked
    grad = jax.grad(lambda o: codec.relaxed(o, jax.random.key(0), mask)[0, 0])(out)
    assert float(jnp.abs(grad).sum()) > 0
    samples = jax.vmap(lambda k: codec.act(out, k, None, mask, False))(
        jax.random.split(jax.random.key(2), 300)
    )
    assert not bool((samples == 1).any())


@pytest.mark.parametrize("sharing", ["shared", "independent"])
def test_actors_ignore_other_agents_and_critics_see_every_agents_action(sharing: str) -> None:
    env = jmarl.make("simple_spread", num_agents=3, continuous_actions=True)
    nets = make_networks(
        env.spec, jmarl.make_policy_mapping(env.spec, sharing), MADDPGConfig(hidden_sizes=(16,))
    )
    actor, critic = nets.init(jax.random.key(0))
    _, ts = env.reset(jax.random.key(1))
    out = nets.actor(actor, ts.obs)
    moved = ts.obs.at[1:].add(1.0)
    np.testing.assert_array_equal(out[0], nets.actor(actor, moved)[0])
    actions = nets.codec.greedy(out, None)
    q = nets.q(critic, ts.obs, ts.state, joint_action_features(actions))
    other = actions.at[2].set(1.0 - actions[2])  # only agent 2's action changes
    q2 = nets.q(critic, ts.obs, ts.state, joint_action_features(other))
    assert not np.allclose(q[0], q2[0])  # agent 0's critic sees agent 2's action


def test_unbounded_or_unsupported_action_spaces_are_refused() -> None:
    env = make_probe_env(num_agents=2)
    for space, words in (
        (spaces.Box(float("-inf"), float("inf"), (2,)), "bounded 1-d Box"),
        (spaces.MultiDiscrete((2, 3)), "Box or Discrete"),
    ):
        spec = type(env.spec)(
            **{**env.spec.__dict__, "action_space": space, "agent_action_spaces": ()}
        )
        bad = env._replace(spec=spec)
        with pytest.raises(ConfigError, match=words):
            make(bad, MADDPGConfig(), 100_000, jmarl.make_policy_mapping(spec, "shared"))
