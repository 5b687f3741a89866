"""The multi-agent PPO loss is assembled from its terms as configured.

``total = policy_loss + vf_coef * value_loss - ent_coef * entropy``; ``normalize_advantages``
makes the policy loss invariant to an affine change of the advantages; ``clip_value`` switches
the value loss between its clipped and plain forms (:mod:`jmarl.ops.losses`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos.base import Transition
from jmarl.algos.ppo.losses import PPOBatch, ppo_loss
from jmarl.algos.ppo.networks import make_actor_critic
from jmarl.ops.losses import ppo_value_loss

CFG = jmarl.ppo_config_for(
    "mappo", jmarl.PPOConfig(hidden_sizes=(8,), vf_coef=0.7, ent_coef=0.3, clip_eps=0.1)
)


def _batch(cfg: jmarl.PPOConfig) -> tuple:
    """A batch of 4 joint steps of 3 agents: returns ``(ac, params, batch)``.

    The stored values are 0 and the targets 1 or -1, so the fresh critic's values (near 0)
    differ from the targets by far more than ``clip_eps``.
    """
    env = jmarl.make("simple_spread", num_agents=3, max_steps=4)
    ac = make_actor_critic(env.spec, make_policy_mapping(env.spec, "shared"), cfg)
    params = ac.init(jax.random.key(0))
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(1), 4))
    tr = Transition(
        obs=ts.obs,
        state=ts.state,
        action=jnp.array([[0, 1, 2], [3, 4, 0], [1, 1, 1], [2, 3, 4]], jnp.int32),
        reward=jnp.zeros((4, 3)),
        discount=jnp.ones((4, 3)),
        alive=jnp.ones((4, 3), bool),
        action_mask=None,
        extras={"log_prob": jnp.full((4, 3), -1.5), "value": jnp.zeros((4, 3))},
    )
    adv = jnp.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [2.0, 2.0, -4.0], [0.5, 1.5, 1.0]])
    targets = jnp.where(adv > 0, 1.0, -1.0)
    return ac, params, PPOBatch(tr, adv, targets)


def test_total_loss_is_policy_plus_weighted_value_minus_weighted_entropy() -> None:
    ac, params, batch = _batch(CFG)
    total, m = ppo_loss(params, batch, ac, CFG)
    # total = pi + 0.7 * v - 0.3 * H
    expected = m["policy_loss"] + 0.7 * m["value_loss"] - 0.3 * m["entropy"]
    np.testing.assert_allclose(total, expected, rtol=1e-6)
    np.testing.assert_allclose(m["loss"], total, rtol=1e-6)
    assert abs(float(m["value_loss"])) > 1e-3 and abs(float(m["entropy"])) > 1e-3


@pytest.mark.parametrize("normalize", [True, False])
def test_normalized_advantages_make_the_policy_loss_affine_invariant(normalize: bool) -> None:
    cfg = dataclasses.replace(CFG, normalize_advantages=normalize)
    ac, params, batch = _batch(cfg)
    _, m = ppo_loss(params, batch, ac, cfg)
    shifted = batch._replace(advantages=5.0 * batch.advantages + 3.0)
    _, m2 = ppo_loss(params, shifted, ac, cfg)
    same = np.isclose(m["policy_loss"], m2["policy_loss"], rtol=1e-4, atol=1e-6)
    assert same == normalize, (normalize, m["policy_loss"], m2["policy_loss"])


@pytest.mark.parametrize("clip_value", [True, False])
def test_clip_value_chooses_the_clipped_value_loss(clip_value: bool) -> None:
    cfg = dataclasses.replace(CFG, clip_value=clip_value)
    ac, params, batch = _batch(cfg)
    _, m = ppo_loss(params, batch, ac, cfg)
    tr = batch.transition
    values = jax.vmap(ac.value, in_axes=(None, 0, 0))(params.critic, tr.obs, tr.state)
    stored = jnp.zeros((4, 3))
    clipped = ppo_value_loss(values, stored, batch.targets, 0.1, tr.alive)
    plain = ppo_value_loss(values, stored, batch.targets, None, tr.alive)
    assert abs(float(clipped - plain)) > 1e-3  # the case separates the two forms
    np.testing.assert_allclose(m["value_loss"], clipped if clip_value else plain, rtol=1e-6)
