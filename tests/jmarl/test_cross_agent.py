"""Cross-agent layers (``jmarl.nn.cross_agent``) inside a policy: they see every agent's row
of one env, stay permutation-equivariant for a shared policy, follow the policy mapping, and
leave decentralised actors untouched (``PPOConfig(critic_mixing=...)``)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jmarl
from jmarl.algos.ppo import make_actor_critic
from jmarl.nn.cross_agent import MIXERS, AgentMixer
from jmarl.testing import check_algorithm

ENV = jmarl.make("simple_spread", num_agents=4)
PERM = np.array([2, 0, 3, 1])  # not an involution


def _critic(kind: str, algo: str = "ippo", sharing: str = "shared", **kw: object):
    cfg = jmarl.ppo_config_for(
        algo,
        jmarl.PPOConfig(critic_mixing=kind, hidden_sizes=(16, 16), **kw),  # type: ignore[arg-type]
    )
    mapping = jmarl.make_policy_mapping(
        ENV.spec,
        sharing,
        agent_groups={"a": ["agent_0", "agent_2"], "b": ["agent_1", "agent_3"]}
        if sharing == "grouped"
        else None,
    )
    ac = make_actor_critic(ENV.spec, mapping, cfg)
    params = ac.init(jax.random.key(0))
    _, ts = ENV.reset(jax.random.key(1))
    return ac, params, ts


@pytest.mark.parametrize("kind", MIXERS)
def test_a_mixer_treats_its_context_as_a_set(kind: str) -> None:
    mixer = AgentMixer(kind)
    h = jax.random.normal(jax.random.key(2), (8,))
    ctx = jax.random.normal(jax.random.key(3), (5, 8))
    params = mixer.init(jax.random.key(4), h, ctx)
    np.testing.assert_allclose(
        mixer.apply(params, h, ctx), mixer.apply(params, h, ctx[np.array([4, 2, 0, 1, 3])]), 1e-6
    )


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
@pytest.mark.parametrize("kind", MIXERS)
def test_a_shared_mixing_critic_is_permutation_equivariant(kind: str, algo: str) -> None:
    ac, params, ts = _critic(kind, algo)
    values = ac.value(params.critic, ts.obs, ts.state)
    permuted = ac.value(params.critic, ts.obs[PERM], ts.state)
    np.testing.assert_allclose(values[PERM], permuted, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", MIXERS)
def test_the_mixing_critic_sees_other_agents_and_the_actor_does_not(kind: str) -> None:
    ac, params, ts = _critic(kind)
    moved = ts.obs.at[3].add(1.0)  # only agent 3's observation changes
    v0, v1 = ac.value(params.critic, ts.obs, ts.state), ac.value(params.critic, moved, ts.state)
    assert abs(float(v0[0] - v1[0])) > 1e-6  # agent 0's value depends on agent 3
    np.testing.assert_array_equal(
        ac.policy(params.actor, ts.obs)[:3], ac.policy(params.actor, moved)[:3]
    )
    plain, plain_params, _ = _critic("none")  # control: IPPO's own critic does not see agent 3
    np.testing.assert_array_equal(
        plain.value(plain_params.critic, ts.obs, ts.state)[:3],
        plain.value(plain_params.critic, moved, ts.state)[:3],
    )


def test_mixing_parameters_follow_the_policy_mapping() -> None:
    _, shared, _ = _critic("attention", sharing="shared")
    _, grouped, _ = _critic("attention", sharing="grouped")
    _, independent, _ = _critic("attention", sharing="independent")
    assert len(shared.critic) == 1 and len(grouped.critic) == 2
    (stacked,) = independent.critic
    assert jax.tree.leaves(stacked["mixer"])[0].shape[0] == ENV.spec.num_agents


@pytest.mark.parametrize(
    ("algo", "sharing"),
    [pytest.param("ippo", "grouped", marks=pytest.mark.slow), ("mappo", "custom")],
)
def test_ppo_with_a_mixing_critic_passes_the_conformance_check(algo: str, sharing: str) -> None:
    cfg = jmarl.PPOConfig(critic_mixing="attention" if algo == "ippo" else "mean")
    check_algorithm(jmarl.ALGORITHMS[algo], cfg=cfg, sharing=sharing)


def test_bad_mixing_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown critic_mixing 'sum'"):
        jmarl.PPOConfig(critic_mixing="sum")
    with pytest.raises(ValueError, match="feed-forward only"):
        jmarl.PPOConfig(critic_mixing="mean", recurrent=True)


def test_training_updates_the_mixer_and_stays_finite() -> None:
    cfg = jmarl.PPOConfig(num_envs=8, rollout_length=25, critic_mixing="attention")
    trainer = jmarl.make_ppo(ENV, cfg, 2 * cfg.steps_per_update)
    key = jax.random.key(0)
    before = trainer.init(key).learner.params.critic
    out = jax.jit(trainer.train)(key)
    assert np.isfinite(np.asarray(out.metrics["value_loss"])).all()
    moved = jax.tree.map(
        lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
        before[0]["mixer"],
        out.state.learner.params.critic[0]["mixer"],
    )
    assert all(jax.tree.leaves(moved)), moved  # every mixer weight received gradient
