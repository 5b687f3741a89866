"""Tests for jmarl.ops.losses: hand-computed losses, metrics, masks and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.ops import masked_mean, normalize_advantages, ppo_policy_loss, ppo_value_loss

CLIP = 0.2  # ratios are clipped to [0.8, 1.2]

# Five cases of (ratio, advantage), with old_log_prob = 0 so log_prob = log(ratio):
#   a: ratio 1.1 inside the clip,  A = +2 -> min(2.2, 2.2)            =  2.2  (grad flows)
#   b: ratio 1.5 above,            A = +2 -> min(3.0, 1.2 * 2 = 2.4)  =  2.4  (clipped)
#   c: ratio 1.5 above,            A = -1 -> min(-1.5, -1.2)          = -1.5  (grad flows)
#   d: ratio 0.5 below,            A = -1 -> min(-0.5, 0.8 * -1)      = -0.8  (clipped)
#   e: ratio 0.5 below,            A = +1 -> min(0.5, 0.8)            =  0.5  (grad flows)
RATIOS = np.array([1.1, 1.5, 1.5, 0.5, 0.5], np.float32)
ADVANTAGES = np.array([2.0, 2.0, -1.0, -1.0, 1.0], np.float32)
LOG_PROB = np.log(RATIOS)
OLD_LOG_PROB = np.zeros(5, np.float32)


def test_masked_mean():
    # (1 + 2) / 2 = 1.5; the nan and the 3 are masked out.
    x = jnp.array([1.0, 2.0, 3.0, jnp.nan])
    np.testing.assert_allclose(masked_mean(x, jnp.array([True, True, False, False])), 1.5)
    # Float weights: (0.5 * 2 + 1.5 * 4) / (0.5 + 1.5) = 7 / 2 = 3.5
    np.testing.assert_allclose(masked_mean(jnp.array([2.0, 4.0]), jnp.array([0.5, 1.5])), 3.5)
    # A single weight below 1 is still a weighted mean: 0.25 * 4 / 0.25 = 4
    np.testing.assert_allclose(masked_mean(jnp.array([4.0]), jnp.array([0.25])), 4.0)
    # An empty mask gives 0, not nan; no mask means a plain mean.
    assert float(masked_mean(x, jnp.zeros(4, bool))) == 0.0
    np.testing.assert_allclose(masked_mean(jnp.array([1.0, 2.0, 6.0])), 3.0)
    # A mask with fewer dims broadcasts: [2, 2] data, [2] mask keeps column 0: (1 + 3) / 2 = 2
    np.testing.assert_allclose(
        masked_mean(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([True, False])), 2.0
    )


def test_policy_loss_by_hand():
    loss, metrics = ppo_policy_loss(LOG_PROB, OLD_LOG_PROB, ADVANTAGES, CLIP, jnp.ones(5))
    # loss = -(2.2 + 2.4 - 1.5 - 0.8 + 0.5) / 5 = -2.8 / 5 = -0.56
    np.testing.assert_allclose(loss, -0.56, rtol=1e-5)
    # |ratio - 1| > 0.2 for b, c, d, e: 4 / 5
    np.testing.assert_allclose(metrics["clip_fraction"], 0.8, rtol=1e-6)
    # (ratio - 1) - log(ratio):
    #   a: 0.1 - 0.0953102 = 0.0046898
    #   b, c: 0.5 - 0.4054651 = 0.0945349
    #   d, e: -0.5 + 0.6931472 = 0.1931472
    # mean = (0.0046898 + 2 * 0.0945349 + 2 * 0.1931472) / 5 = 0.580054 / 5 = 0.1160108
    np.testing.assert_allclose(metrics["approx_kl"], 0.1160108, rtol=1e-4)


def test_policy_loss_gradient_by_hand():
    def loss_fn(log_prob):
        return ppo_policy_loss(log_prob, OLD_LOG_PROB, ADVANTAGES, CLIP, None)[0]

    grad = jax.grad(loss_fn)(jnp.asarray(LOG_PROB))
    # Where the unclipped term is the min, d/dlogp of -ratio * A / 5 is -ratio * A / 5:
    #   a: -1.1 * 2 / 5 = -0.44;  c: -1.5 * -1 / 5 = 0.3;  e: -0.5 * 1 / 5 = -0.1
    # Clipped entries b and d get no gradient.
    np.testing.assert_allclose(grad, [-0.44, 0.0, 0.3, 0.0, -0.1], rtol=1e-5, atol=1e-7)


def test_policy_loss_masked_entries_ignored():
    # Append two padding entries holding garbage (inf / nan) and mask them out.
    log_prob = jnp.concatenate([jnp.asarray(LOG_PROB), jnp.array([jnp.inf, 50.0])])
    old = jnp.concatenate([jnp.asarray(OLD_LOG_PROB), jnp.array([0.0, jnp.nan])])
    adv = jnp.concatenate([jnp.asarray(ADVANTAGES), jnp.array([jnp.nan, 1e9])])
    mask = jnp.array([True] * 5 + [False, False])

    def loss_fn(lp):
        return ppo_policy_loss(lp, old, adv, CLIP, mask)

    (loss, metrics), grad = jax.value_and_grad(loss_fn, has_aux=True)(log_prob)
    np.testing.assert_allclose(loss, -0.56, rtol=1e-5)
    np.testing.assert_allclose(metrics["clip_fraction"], 0.8, rtol=1e-6)
    np.testing.assert_allclose(metrics["approx_kl"], 0.1160108, rtol=1e-4)
    np.testing.assert_allclose(grad, [-0.44, 0.0, 0.3, 0.0, -0.1, 0.0, 0.0], rtol=1e-5, atol=1e-7)


def test_policy_loss_no_gradient_to_old_log_prob_or_advantages():
    def loss_fn(old, adv):
        return ppo_policy_loss(jnp.asarray(LOG_PROB), old, adv, CLIP, None)[0]

    g_old, g_adv = jax.grad(loss_fn, argnums=(0, 1))(
        jnp.asarray(OLD_LOG_PROB), jnp.asarray(ADVANTAGES)
    )
    np.testing.assert_array_equal(g_old, np.zeros(5))
    np.testing.assert_array_equal(g_adv, np.zeros(5))


# Value clipping with eps = 0.2, old value 1.0 and target 2.0 everywhere:
#   v = 1.5: unclipped (1.5 - 2)^2 = 0.25; v_clip = 1.0 + 0.2 = 1.2 -> (1.2 - 2)^2 = 0.64;
#            max = 0.64 (clipped, no gradient)
#   v = 0.5: unclipped (0.5 - 2)^2 = 2.25; v_clip = 1.0 - 0.2 = 0.8 -> (0.8 - 2)^2 = 1.44;
#            max = 2.25 (unclipped, gradient 0.5 * 2 * (0.5 - 2) / 3 = -0.5)
#   v = 1.1: both (1.1 - 2)^2 = 0.81 (inside the clip, gradient 0.5 * 2 * (1.1 - 2) / 3 = -0.3)
VALUES = np.array([1.5, 0.5, 1.1], np.float32)
OLD_VALUES = np.ones(3, np.float32)
TARGETS = np.full(3, 2.0, np.float32)


def test_value_loss_clipped_by_hand():
    loss, grad = jax.value_and_grad(ppo_value_loss)(
        jnp.asarray(VALUES), OLD_VALUES, TARGETS, CLIP, jnp.ones(3, bool)
    )
    # 0.5 * (0.64 + 2.25 + 0.81) / 3 = 0.5 * 3.7 / 3 = 0.6166667
    np.testing.assert_allclose(loss, 0.6166667, rtol=1e-5)
    np.testing.assert_allclose(grad, [0.0, -0.5, -0.3], rtol=1e-5, atol=1e-7)


def test_value_loss_unclipped():
    # 0.5 * (0.25 + 2.25 + 0.81) / 3 = 0.5 * 3.31 / 3 = 0.5516667
    for clip in (None, 0.0, -1.0):
        loss = ppo_value_loss(VALUES, OLD_VALUES, TARGETS, clip, None)
        np.testing.assert_allclose(loss, 0.5516667, rtol=1e-5)


def test_value_loss_masked_entries_ignored():
    values = jnp.concatenate([jnp.asarray(VALUES), jnp.array([jnp.nan])])
    old = jnp.concatenate([jnp.asarray(OLD_VALUES), jnp.array([jnp.inf])])
    targets = jnp.concatenate([jnp.asarray(TARGETS), jnp.array([-1e30])])
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    loss, grad = jax.value_and_grad(ppo_value_loss)(values, old, targets, CLIP, mask)
    np.testing.assert_allclose(loss, 0.6166667, rtol=1e-5)
    np.testing.assert_allclose(grad, [0.0, -0.5, -0.3, 0.0], rtol=1e-5, atol=1e-7)


def test_normalize_advantages_masked():
    adv = jnp.array([1.0, 2.0, 3.0, 100.0])
    mask = jnp.array([True, True, True, False])
    # mean = 2, var = (1 + 0 + 1) / 3 = 2 / 3, std = 0.8164966
    # -> [-1 / 0.8164966, 0, 1 / 0.8164966, 0 (masked)] = [-1.2247449, 0, 1.2247449, 0]
    out = normalize_advantages(adv, mask)
    np.testing.assert_allclose(out, [-1.2247449, 0.0, 1.2247449, 0.0], rtol=1e-5, atol=1e-7)
    # Constant advantages do not divide by zero.
    np.testing.assert_array_equal(normalize_advantages(jnp.full(3, 5.0)), np.zeros(3))
    # A nan in a masked slot does not leak.
    assert np.all(np.isfinite(normalize_advantages(adv.at[3].set(jnp.nan), mask)))


def test_losses_jit_with_batch_dims():
    # [T, E, N] = [2, 2, 3], agent 2 of env 1 is dead for the whole rollout.
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    shape = (2, 2, 3)
    log_prob = 0.1 * jax.random.normal(k1, shape)
    adv = jax.random.normal(k2, shape)
    mask = jnp.ones(shape, bool).at[:, 1, 2].set(False)
    loss, metrics = jax.jit(ppo_policy_loss, static_argnums=3)(
        log_prob, jnp.zeros(shape), adv, CLIP, mask
    )
    # Changing the dead agent's data changes nothing.
    loss2, _ = ppo_policy_loss(
        log_prob.at[:, 1, 2].set(9.0), jnp.zeros(shape), adv.at[:, 1, 2].set(-9.0), CLIP, mask
    )
    np.testing.assert_allclose(loss, loss2, rtol=1e-6)
    assert loss.shape == () and metrics["approx_kl"].shape == ()
    values = jax.random.normal(k3, shape)
    vloss = jax.jit(ppo_value_loss)(values, jnp.zeros(shape), adv, 0.2, mask)
    assert vloss.shape == () and np.isfinite(vloss)


def test_normalize_advantages_eps_is_added_to_the_std():
    # mean = (0 + 4) / 2 = 2, population std = sqrt((4 + 4) / 2) = 2.
    # With eps = 1: (A - 2) / (2 + 1) = [-2 / 3, 2 / 3] = [-0.6666667, 0.6666667].
    out = normalize_advantages(jnp.array([0.0, 4.0]), eps=1.0)
    np.testing.assert_allclose(out, [-0.6666667, 0.6666667], rtol=1e-6)


def test_policy_loss_ratio_is_new_over_old_probability():
    # Non-zero old log-probabilities: rho = exp(log p_new - log p_old) = p_new / p_old.
    #   a: p 0.55 / 0.5 = 1.1 inside the clip,  A = +2 -> min(2.2, 2.2)         =  2.2
    #   b: p 0.6  / 0.4 = 1.5 above,            A = +2 -> min(3.0, 1.2 * 2)     =  2.4
    #   c: p 0.2  / 0.4 = 0.5 below,            A = -1 -> min(-0.5, 0.8 * -1)   = -0.8
    log_prob = np.log(np.array([0.55, 0.6, 0.2], np.float32))
    old_log_prob = np.log(np.array([0.5, 0.4, 0.4], np.float32))
    advantages = np.array([2.0, 2.0, -1.0], np.float32)
    loss, metrics = ppo_policy_loss(log_prob, old_log_prob, advantages, CLIP)
    # loss = -(2.2 + 2.4 - 0.8) / 3 = -3.8 / 3 = -1.2666667
    np.testing.assert_allclose(loss, -1.2666667, rtol=1e-5)
    # |rho - 1| > 0.2 for b and c: 2 / 3
    np.testing.assert_allclose(metrics["clip_fraction"], 2 / 3, rtol=1e-6)
    # (rho - 1) - log(rho):
    #   a: 0.1 - 0.0953102 = 0.0046898;  b: 0.5 - 0.4054651 = 0.0945349
    #   c: -0.5 + 0.6931472 = 0.1931472
    # mean = (0.0046898 + 0.0945349 + 0.1931472) / 3 = 0.2923719 / 3 = 0.0974573
    np.testing.assert_allclose(metrics["approx_kl"], 0.0974573, rtol=1e-4)


def test_clip_fraction_excludes_ratios_exactly_on_the_clip_boundary():
    # clip_eps = 0 puts the boundary at rho = 1. Equal log-probabilities give
    # log_prob - old_log_prob = 0 exactly, so rho = exp(0) = 1 and |rho - 1| = 0 = clip_eps:
    # on the boundary, not beyond it, so not counted. Only c (rho = e^0.5) counts: 1 / 3.
    log_prob = np.array([0.3, -1.2, 0.5], np.float32)
    old_log_prob = np.array([0.3, -1.2, 0.0], np.float32)
    _, metrics = ppo_policy_loss(log_prob, old_log_prob, np.ones(3, np.float32), 0.0)
    np.testing.assert_allclose(metrics["clip_fraction"], 1 / 3, rtol=1e-6)
    # With every ratio on the boundary nothing is clipped.
    _, metrics = ppo_policy_loss(log_prob, log_prob, np.ones(3, np.float32), 0.0)
    assert float(metrics["clip_fraction"]) == 0.0


def test_value_loss_clipped_with_target_below_old_value():
    # Mirror of test_value_loss_clipped_by_hand: eps = 0.2, old value 1.0, target 0.0.
    #   v = 0.5: unclipped (0.5 - 0)^2 = 0.25; v_clip = 1.0 + clip(-0.5) = 1.0 - 0.2 = 0.8
    #            -> 0.8^2 = 0.64; max = 0.64 (clipped, no gradient)
    #   v = 1.5: unclipped 1.5^2 = 2.25; v_clip = 1.0 + 0.2 = 1.2 -> 1.44;
    #            max = 2.25 (unclipped, gradient 0.5 * 2 * 1.5 / 3 = 0.5)
    #   v = 0.9: inside the clip, both 0.9^2 = 0.81 (gradient 0.5 * 2 * 0.9 / 3 = 0.3)
    values = jnp.array([0.5, 1.5, 0.9])
    loss, grad = jax.value_and_grad(ppo_value_loss)(values, jnp.ones(3), jnp.zeros(3), CLIP)
    # 0.5 * (0.64 + 2.25 + 0.81) / 3 = 0.5 * 3.7 / 3 = 0.6166667
    np.testing.assert_allclose(loss, 0.6166667, rtol=1e-5)
    np.testing.assert_allclose(grad, [0.0, 0.5, 0.3], rtol=1e-5, atol=1e-7)
