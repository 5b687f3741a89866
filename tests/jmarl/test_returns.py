"""Tests for jmarl.ops.returns: hand-computed values and consistency between estimators."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmarl.ops import discounted_returns, gae_advantages, lambda_returns, td_errors

# A 3-step trajectory used throughout: gamma = 0.9, no episode end.
REWARDS = np.array([1.0, 0.0, 2.0], np.float32)
DISCOUNTS = np.array([0.9, 0.9, 0.9], np.float32)
VALUES = np.array([0.5, 1.0, -1.0, 2.0], np.float32)  # V(s_0..s_3); V(s_3) bootstraps.


def _gae_reference(rewards, discounts, values, lambda_):
    """Plain Python loop over one column, written independently of the scan."""
    adv = np.zeros_like(rewards)
    next_adv = 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + discounts[t] * values[t + 1] - values[t]
        next_adv = delta + discounts[t] * lambda_ * next_adv
        adv[t] = next_adv
    return adv


def test_td_errors_by_hand():
    # delta_0 = 1 + 0.9 * 1.0 - 0.5    =  1.4
    # delta_1 = 0 + 0.9 * (-1.0) - 1.0 = -1.9
    # delta_2 = 2 + 0.9 * 2.0 - (-1.0) =  4.8
    np.testing.assert_allclose(td_errors(REWARDS, DISCOUNTS, VALUES), [1.4, -1.9, 4.8], rtol=1e-6)


def test_gae_three_steps_by_hand():
    # gamma * lambda = 0.9 * 0.5 = 0.45; deltas as in test_td_errors_by_hand.
    # A_2 = 4.8
    # A_1 = -1.9 + 0.45 * 4.8  = -1.9 + 2.16  = 0.26
    # A_0 =  1.4 + 0.45 * 0.26 =  1.4 + 0.117 = 1.517
    adv = gae_advantages(REWARDS, DISCOUNTS, VALUES, 0.5)
    np.testing.assert_allclose(adv, [1.517, 0.26, 4.8], rtol=1e-5)
    # Return targets add V(s_t): [1.517 + 0.5, 0.26 + 1.0, 4.8 - 1.0] = [2.017, 1.26, 3.8].
    targets = lambda_returns(REWARDS, DISCOUNTS, VALUES, 0.5)
    np.testing.assert_allclose(targets, [2.017, 1.26, 3.8], rtol=1e-5)


def test_discounted_returns_by_hand():
    # G_3 = bootstrap = 2.0
    # G_2 = 2 + 0.9 * 2.0  = 3.8
    # G_1 = 0 + 0.9 * 3.8  = 3.42
    # G_0 = 1 + 0.9 * 3.42 = 4.078
    returns = discounted_returns(REWARDS, DISCOUNTS, jnp.float32(2.0))
    np.testing.assert_allclose(returns, [4.078, 3.42, 3.8], rtol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value():
    # [4.078 - 0.5, 3.42 - 1.0, 3.8 - (-1.0)] = [3.578, 2.42, 4.8]
    adv = gae_advantages(REWARDS, DISCOUNTS, VALUES, 1.0)
    np.testing.assert_allclose(adv, [3.578, 2.42, 4.8], rtol=1e-5)
    returns = discounted_returns(REWARDS, DISCOUNTS, VALUES[-1])
    np.testing.assert_allclose(adv, returns - VALUES[:-1], rtol=1e-5)
    # The TD(1) return target is then the bootstrapped discounted return itself.
    np.testing.assert_allclose(lambda_returns(REWARDS, DISCOUNTS, VALUES, 1.0), returns, rtol=1e-5)


def test_gae_lambda_zero_is_td_error():
    adv = gae_advantages(REWARDS, DISCOUNTS, VALUES, 0.0)
    np.testing.assert_allclose(adv, td_errors(REWARDS, DISCOUNTS, VALUES), rtol=1e-6)


def test_episode_boundary_cuts_recursion():
    # The episode ends after step 1: d_1 = 0.
    # delta_0 = 1.4; delta_1 = 0 + 0 * (-1.0) - 1.0 = -1.0; delta_2 = 4.8
    # A_2 = 4.8
    # A_1 = -1.0 + 0 * 4.8           = -1.0
    # A_0 =  1.4 + 0.45 * (-1.0)     =  0.95
    discounts = np.array([0.9, 0.0, 0.9], np.float32)
    adv = gae_advantages(REWARDS, discounts, VALUES, 0.5)
    np.testing.assert_allclose(adv, [0.95, -1.0, 4.8], rtol=1e-6)
    # Nothing from the next episode (r_2, V(s_2), V(s_3)) reaches steps 0 and 1.
    other = gae_advantages(
        np.array([1.0, 0.0, -50.0], np.float32),
        discounts,
        np.array([0.5, 1.0, 30.0, -7.0], np.float32),
        0.5,
    )
    np.testing.assert_allclose(other[:2], adv[:2], rtol=1e-6)
    # Same for the plain discounted return: G_1 = 0, G_0 = 1 + 0.9 * 0 = 1.
    returns = discounted_returns(REWARDS, discounts, jnp.float32(2.0))
    np.testing.assert_allclose(returns[:2], [1.0, 0.0], atol=1e-7)


def test_trailing_batch_dims_match_per_column():
    t, e, n = 5, 3, 2
    kr, kd, kv = jax.random.split(jax.random.PRNGKey(0), 3)
    rewards = jax.random.normal(kr, (t, e, n))
    dones = jax.random.bernoulli(kd, 0.3, (t, e, n))
    discounts = 0.95 * (1.0 - dones.astype(jnp.float32))
    values = jax.random.normal(kv, (t + 1, e, n))
    adv = gae_advantages(rewards, discounts, values, 0.8)
    assert adv.shape == (t, e, n)
    r, d, v = np.asarray(rewards), np.asarray(discounts), np.asarray(values)
    for i in range(e):
        for j in range(n):
            expected = _gae_reference(r[:, i, j], d[:, i, j], v[:, i, j], 0.8)
            np.testing.assert_allclose(adv[:, i, j], expected, rtol=1e-5, atol=1e-6)
    returns = discounted_returns(rewards, discounts, values[-1])
    assert returns.shape == (t, e, n)
    np.testing.assert_allclose(
        gae_advantages(rewards, discounts, values, 1.0), returns - values[:-1], atol=1e-5
    )


def test_jit_and_vmap_agree_with_eager():
    rewards = jnp.stack([REWARDS, 2 * REWARDS], axis=0)  # [B, T]
    discounts = jnp.stack([DISCOUNTS, DISCOUNTS], axis=0)
    values = jnp.stack([VALUES, -VALUES], axis=0)
    vmapped = jax.vmap(gae_advantages, in_axes=(0, 0, 0, None))(rewards, discounts, values, 0.5)
    jitted = jax.jit(gae_advantages)(rewards.T, discounts.T, values.T, 0.5)  # time-major [T, B]
    np.testing.assert_allclose(vmapped, jitted.T, rtol=1e-6)
    np.testing.assert_allclose(vmapped[0], [1.517, 0.26, 4.8], rtol=1e-5)


def test_no_gradient_through_values():
    def total(values):
        return jnp.sum(gae_advantages(REWARDS, DISCOUNTS, values, 0.5)) + jnp.sum(
            lambda_returns(REWARDS, DISCOUNTS, values, 0.5)
        )

    np.testing.assert_array_equal(jax.grad(total)(jnp.asarray(VALUES)), np.zeros(4))


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"T \+ 1"):
        gae_advantages(REWARDS, DISCOUNTS, VALUES[:-1], 0.5)
    with pytest.raises(ValueError, match="same shape"):
        gae_advantages(REWARDS, DISCOUNTS[:2], VALUES, 0.5)


def test_rejects_scalar_rewards_without_time_axis():
    # A 0-d reward has no leading time axis [T, ...]: every estimator must say so, rather
    # than fail later with an unrelated indexing or scan error.
    scalar, discount = np.float32(1.0), np.float32(0.9)
    with pytest.raises(ValueError, match="leading time axis"):
        td_errors(scalar, discount, VALUES[:2])
    with pytest.raises(ValueError, match="leading time axis"):
        gae_advantages(scalar, discount, VALUES[:2], 0.5)
    with pytest.raises(ValueError, match="leading time axis"):
        discounted_returns(scalar, discount, jnp.float32(2.0))
