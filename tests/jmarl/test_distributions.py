"""Tests for jmarl.nn.distributions: hand-computed densities, masks, sampling, transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmarl.env.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from jmarl.nn.distributions import (
    make_action_distribution,
    make_categorical,
    make_gaussian,
)

LOG_2PI = np.log(2.0 * np.pi)


# --- categorical ----------------------------------------------------------------------------


def test_categorical_uniform():
    dist = make_categorical(4)
    logits = jnp.zeros(4)
    # p = 1/4 each: entropy = -4 * (1/4) * log(1/4) = log 4 = 1.3862944
    np.testing.assert_allclose(dist.entropy(logits), np.log(4.0), rtol=1e-6)
    np.testing.assert_allclose(dist.log_prob(logits, jnp.int32(2)), -np.log(4.0), rtol=1e-6)
    # Masking actions 1 and 3 leaves a uniform choice of 2: entropy log 2, log p = -log 2.
    mask = jnp.array([True, False, True, False])
    np.testing.assert_allclose(dist.entropy(logits, mask), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(dist.log_prob(logits, jnp.int32(0), mask), -np.log(2.0), rtol=1e-6)
    # A masked action has a huge negative but finite log-probability.
    masked_lp = dist.log_prob(logits, jnp.int32(1), mask)
    assert np.isfinite(masked_lp) and masked_lp < -1e30


def test_categorical_by_hand():
    dist = make_categorical(4)
    logits = jnp.log(jnp.array([1.0, 2.0, 3.0, 4.0]))  # p = [0.1, 0.2, 0.3, 0.4]
    np.testing.assert_allclose(dist.log_prob(logits, jnp.int32(3)), np.log(0.4), rtol=1e-6)
    # -(0.1 ln 0.1 + 0.2 ln 0.2 + 0.3 ln 0.3 + 0.4 ln 0.4)
    #   = 0.2302585 + 0.3218876 + 0.3611918 + 0.3665163 = 1.2798542
    np.testing.assert_allclose(dist.entropy(logits), 1.2798542, rtol=1e-6)
    # Mask action 2: p = [1, 2, 4] / 7 over actions 0, 1, 3.
    mask = jnp.array([True, True, False, True])
    np.testing.assert_allclose(dist.log_prob(logits, jnp.int32(3), mask), np.log(4 / 7), rtol=1e-6)
    p = np.array([1.0, 2.0, 4.0]) / 7
    np.testing.assert_allclose(dist.entropy(logits, mask), -np.sum(p * np.log(p)), rtol=1e-6)


def test_categorical_masked_actions_never_sampled():
    dist = make_categorical(4)
    logits = jnp.array([10.0, 0.0, 10.0, 0.0])  # the masked actions are the likely ones
    mask = jnp.array([False, True, False, True])
    actions = dist.sample(jax.random.PRNGKey(0), jnp.broadcast_to(logits, (10_000, 4)), mask)
    assert actions.dtype == jnp.int32 and actions.shape == (10_000,)
    counts = np.bincount(np.asarray(actions), minlength=4)
    assert counts[0] == 0 and counts[2] == 0
    # The two allowed actions are equally likely: each near 5000 (std 50).
    assert abs(counts[1] - 5000) < 300


def test_categorical_sampling_frequencies():
    dist = make_categorical(3)
    logits = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    actions = jax.jit(dist.sample)(jax.random.PRNGKey(1), jnp.broadcast_to(logits, (10_000, 3)))
    freq = np.bincount(np.asarray(actions), minlength=3) / 10_000
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.02)


def test_categorical_mode_respects_mask():
    dist = make_categorical(4)
    logits = jnp.array([5.0, 1.0, 0.0, 2.0])
    assert int(dist.mode(logits)) == 0
    assert int(dist.mode(logits, jnp.array([False, True, True, True]))) == 3


def test_categorical_all_masked_row_falls_back_to_unmasked():
    dist = make_categorical(3)
    logits = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    none = jnp.zeros(3, bool)
    np.testing.assert_allclose(dist.log_prob(logits, jnp.int32(1), none), np.log(0.3), rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(logits, none), dist.entropy(logits), rtol=1e-6)
    assert int(dist.mode(logits, none)) == 2


def test_categorical_gradients_finite_with_all_but_one_masked():
    dist = make_categorical(4)
    mask = jnp.array([False, False, True, False])
    logits = jnp.array([1.0, -2.0, 0.5, 3.0])

    def objective(params):
        return dist.log_prob(params, jnp.int32(2), mask) + dist.entropy(params, mask)

    value, grad = jax.value_and_grad(objective)(logits)
    # Only action 2 is allowed: p = 1, so log p = 0 and the entropy is 0, with zero gradient.
    np.testing.assert_allclose(value, 0.0, atol=1e-6)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, np.zeros(4), atol=1e-6)
    # Taking the gradient of a masked action's log-probability is finite too.
    g_masked = jax.grad(lambda p: dist.log_prob(p, jnp.int32(0), mask))(logits)
    assert np.all(np.isfinite(g_masked))


def test_categorical_neg_inf_logits_are_safe():
    dist = make_categorical(3)
    logits = jnp.array([0.0, -jnp.inf, 0.0])
    np.testing.assert_allclose(dist.entropy(logits), np.log(2.0), rtol=1e-6)
    grad = jax.grad(lambda p: dist.entropy(p) + dist.log_prob(p, jnp.int32(0)))(logits)
    assert np.all(np.isfinite(grad))


def test_categorical_batched_jit_and_vmap():
    dist = make_categorical(5)
    key = jax.random.PRNGKey(2)
    logits = jax.random.normal(key, (3, 2, 5))  # [E, N, A]
    mask = jax.random.bernoulli(jax.random.PRNGKey(3), 0.6, (3, 2, 5)).at[..., 0].set(True)
    actions = jax.jit(dist.mode)(logits, mask)
    assert actions.shape == (3, 2)
    batched = jax.jit(dist.log_prob)(logits, actions, mask)
    per_row = jax.vmap(jax.vmap(dist.log_prob))(logits, actions, mask)
    np.testing.assert_allclose(batched, per_row, rtol=1e-6)
    assert dist.entropy(logits, mask).shape == (3, 2)


def test_categorical_sample_over_env_agent_batch_respects_masks():
    dist = make_categorical(5)
    logits = jax.random.normal(jax.random.PRNGKey(4), (3, 2, 5))  # [E, N, A], N != A
    # One allowed action per (env, agent): the sample has no choice but to take it.
    allowed = jnp.array([[0, 4], [2, 1], [3, 3]], jnp.int32)
    mask = jax.nn.one_hot(allowed, 5, dtype=bool)
    for seed in range(3):
        actions = jax.jit(dist.sample)(jax.random.PRNGKey(seed), logits, mask)
        assert actions.shape == (3, 2) and actions.dtype == jnp.int32
        np.testing.assert_array_equal(actions, allowed)
    # Unmasked, one action is still drawn per (env, agent), from the A axis.
    actions = dist.sample(jax.random.PRNGKey(0), logits)
    assert actions.shape == (3, 2) and np.all((actions >= 0) & (actions < 5))


def test_categorical_batched_entropy_is_per_row_entropy():
    dist = make_categorical(3)
    logits = jnp.log(jnp.array([[1.0, 1.0, 2.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]))  # [B, A]
    mask = jnp.array([[True, True, True], [True, True, False], [False, True, True]])
    # Row 0: p = [1/4, 1/4, 1/2]: 2 * (1/4) ln 4 + (1/2) ln 2 = 0.6931472 + 0.3465736 = 1.0397208
    # Row 1: uniform over the 2 allowed actions: ln 2 = 0.6931472
    # Row 2: p = [2, 3] / 5 over actions 1, 2: -(0.4 ln 0.4 + 0.6 ln 0.6)
    #        = 0.3665163 + 0.3064954 = 0.6730117
    batched = dist.entropy(logits, mask)
    np.testing.assert_allclose(batched, [1.0397208, 0.6931472, 0.6730117], rtol=1e-6)
    np.testing.assert_allclose(batched, jax.vmap(dist.entropy)(logits, mask), rtol=1e-6)


# --- gaussian -------------------------------------------------------------------------------


def test_gaussian_log_prob_and_entropy_by_hand():
    dist = make_gaussian(2)
    assert dist.param_size == 4
    params = jnp.array([0.5, -1.0, 0.0, np.log(2.0)])  # mean [0.5, -1], std [1, 2]
    action = jnp.array([1.0, 0.0])
    # z = [(1 - 0.5) / 1, (0 + 1) / 2] = [0.5, 0.5]
    # log p = sum(-z^2 / 2 - log std - log(2 pi) / 2)
    #       = (-0.125 - 0 - 0.9189385) + (-0.125 - 0.6931472 - 0.9189385) = -2.7810242
    np.testing.assert_allclose(dist.log_prob(params, action), -2.7810242, rtol=1e-6)
    # Entropy = sum(1/2 + log(2 pi)/2 + log std) = 2 * 1.4189385 + 0.6931472 = 3.5310242
    np.testing.assert_allclose(dist.entropy(params), 3.5310242, rtol=1e-6)
    np.testing.assert_array_equal(dist.mode(params), [0.5, -1.0])


def test_gaussian_log_prob_matches_numpy_density():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(6, 3)).astype(np.float32)
    std = rng.uniform(0.2, 2.0, size=(6, 3)).astype(np.float32)
    action = rng.normal(size=(6, 3)).astype(np.float32)
    # The product of 1-D normal densities, then its log.
    density = np.prod(
        np.exp(-((action - mean) ** 2) / (2 * std**2)) / (np.sqrt(2 * np.pi) * std), axis=-1
    )
    dist = make_gaussian(3)
    params = jnp.concatenate([mean, np.log(std)], axis=-1)
    np.testing.assert_allclose(dist.log_prob(params, action), np.log(density), rtol=1e-5)
    np.testing.assert_allclose(
        dist.entropy(params), np.sum(0.5 * np.log(2 * np.pi * np.e * std**2), axis=-1), rtol=1e-5
    )


def test_gaussian_log_std_is_clipped_and_mask_ignored():
    dist = make_gaussian(1, min_log_std=-5.0, max_log_std=2.0)
    # log std 10 is clipped to 2: entropy = 0.5 + 0.9189385 + 2 = 3.4189385
    np.testing.assert_allclose(dist.entropy(jnp.array([0.0, 10.0])), 3.4189385, rtol=1e-6)
    # log std -20 is clipped to -5: entropy = 1.4189385 - 5 = -3.5810615
    np.testing.assert_allclose(dist.entropy(jnp.array([0.0, -20.0])), -3.5810615, rtol=1e-6)
    params = jnp.array([0.3, 0.0])
    np.testing.assert_array_equal(
        dist.log_prob(params, jnp.array([1.0]), jnp.array([False])),
        dist.log_prob(params, jnp.array([1.0])),
    )


def test_gaussian_sampling_statistics_and_vmap():
    dist = make_gaussian(2)
    params = jnp.array([1.0, -2.0, np.log(0.5), np.log(3.0)])
    keys = jax.random.split(jax.random.PRNGKey(0), 10_000)
    samples = jax.jit(jax.vmap(dist.sample, in_axes=(0, None)))(keys, params)
    assert samples.shape == (10_000, 2)
    np.testing.assert_allclose(samples.mean(0), [1.0, -2.0], atol=0.1)
    np.testing.assert_allclose(samples.std(0), [0.5, 3.0], rtol=0.05)
    # Same key, same sample.
    np.testing.assert_array_equal(dist.sample(keys[0], params), dist.sample(keys[0], params))


def test_gaussian_gradients_finite():
    dist = make_gaussian(2)
    params = jnp.array([0.0, 1.0, -0.5, 0.5])
    grad = jax.grad(lambda p: dist.log_prob(p, jnp.array([0.3, 0.2])) + dist.entropy(p))(params)
    assert np.all(np.isfinite(grad))


# --- from spaces ----------------------------------------------------------------------------


def test_make_action_distribution_from_spaces():
    assert make_action_distribution(Discrete(5)).param_size == 5
    assert make_action_distribution(Box(-1.0, 1.0, (3,))).param_size == 6
    with pytest.raises(NotImplementedError, match="MultiDiscrete"):
        make_action_distribution(MultiDiscrete((2, 3)))
    with pytest.raises(NotImplementedError, match="1-D"):
        make_action_distribution(Box(-1.0, 1.0, (2, 2)))
    with pytest.raises(TypeError, match="MultiBinary"):
        make_action_distribution(MultiBinary((3,)))


def test_gaussian_default_log_std_bounds_are_minus_5_and_2():
    dist = make_gaussian(1)  # default min_log_std = -5, max_log_std = 2
    # entropy = 1/2 + ln(2 pi) / 2 + log std = 1.4189385 + log std
    #   log std 10  -> 2:   1.4189385 + 2   =  3.4189385
    #   log std -20 -> -5:  1.4189385 - 5   = -3.5810615
    #   log std 1.5 and -4.5 are inside the bounds and kept as they are.
    params = jnp.array([[0.0, 10.0], [0.0, -20.0], [0.0, 1.5], [0.0, -4.5]])
    np.testing.assert_allclose(
        dist.entropy(params), [3.4189385, -3.5810615, 2.9189385, -3.0810615], rtol=1e-6
    )
    # log p(mean) = -log std - ln(2 pi) / 2: with log std 10 clipped to 2,
    # -2 - 0.9189385 = -2.9189385
    np.testing.assert_allclose(
        dist.log_prob(jnp.array([0.0, 10.0]), jnp.array([0.0])), -2.9189385, rtol=1e-6
    )
