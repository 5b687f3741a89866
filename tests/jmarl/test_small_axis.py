"""Tests for jmarl.ops.small_axis: the same values as the jnp reductions, slice by slice."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmarl.nn.distributions import make_categorical
from jmarl.ops import small_axis
from jmarl.ops.small_axis import any_last, argmax_last, log_softmax, max_last, sum_last

# 1 and 5 are unrolled, 16 is the longest unrolled axis, 17 the shortest jnp one
SIZES = [1, 2, 5, small_axis.UNROLL_LIMIT, small_axis.UNROLL_LIMIT + 1]


@pytest.mark.parametrize("size", SIZES)
def test_values_equal_the_jnp_reductions(size):
    x = jax.random.normal(jax.random.key(size), (7, 3, size)) * 5.0
    np.testing.assert_allclose(sum_last(x), jnp.sum(x, axis=-1), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(max_last(x), jnp.max(x, axis=-1))
    np.testing.assert_array_equal(argmax_last(x), jnp.argmax(x, axis=-1))
    np.testing.assert_array_equal(any_last(x > 4.0), jnp.any(x > 4.0, axis=-1))
    np.testing.assert_allclose(log_softmax(x), jax.nn.log_softmax(x), rtol=1e-6, atol=1e-6)
    assert argmax_last(x).dtype == jnp.int32


def test_by_hand():
    x = jnp.array([[1.0, 3.0, 3.0, -2.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(sum_last(x), [5.0, 0.0])
    np.testing.assert_array_equal(max_last(x), [3.0, 0.0])
    np.testing.assert_array_equal(argmax_last(x), [1, 0])  # ties: the first maximum
    # log_softmax of equal logits is -log(4)
    np.testing.assert_allclose(log_softmax(x)[1], np.full(4, -np.log(4.0)), rtol=1e-6)
    np.testing.assert_array_equal(any_last(jnp.array([[False, True], [False, False]])), [1, 0])


def test_nan_is_the_maximum_as_in_jnp():
    x = jnp.array([[1.0, jnp.nan, 5.0, jnp.nan], [jnp.nan, 2.0, 1.0, 0.0]])
    np.testing.assert_array_equal(argmax_last(x), jnp.argmax(x, axis=-1))  # the first NaN
    assert np.isnan(max_last(x)).all()


@pytest.mark.parametrize("size", [5, small_axis.UNROLL_LIMIT + 1])
def test_log_softmax_gradients_equal_jax_nn(size):
    x = jax.random.normal(jax.random.key(1), (4, size))
    w = jax.random.normal(jax.random.key(2), (4, size))
    ours = jax.grad(lambda v: jnp.sum(w * log_softmax(v)))(x)
    theirs = jax.grad(lambda v: jnp.sum(w * jax.nn.log_softmax(v)))(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_categorical_draws_are_jax_random_categoricals():
    logits = jax.random.normal(jax.random.key(3), (64, 5))
    keys = jax.random.split(jax.random.key(4), 8)
    dist = make_categorical(5)
    for key in keys:
        np.testing.assert_array_equal(
            dist.sample(key, logits), jax.random.categorical(key, logits, axis=-1)
        )


def _reduce_ops(fn, *args):
    """The ``reduce`` ops of ``fn``'s compiled program."""
    return len(re.findall(r"= \S+ reduce\(", jax.jit(fn).lower(*args).compile().as_text()))


def test_the_categorical_distribution_of_few_actions_has_no_reduce_op():
    """The fast path is wired: sampling, log-probabilities, entropy and their gradients over 5
    actions use elementwise code only (a ``jnp`` reduction, or the gradient of a broadcast,
    would put a ``reduce`` here)."""
    dist = make_categorical(5)
    logits = jnp.zeros((8, 3, 5))
    mask = jnp.ones((8, 3, 5), bool)
    action = jnp.zeros((8, 3), jnp.int32)

    def loss(p):
        return jnp.mean(dist.log_prob(p, action, mask) + dist.entropy(p, mask))

    assert _reduce_ops(lambda p: dist.sample(jax.random.key(0), p, mask), logits) == 0
    assert _reduce_ops(lambda p: dist.mode(p, mask), logits) == 0
    assert _reduce_ops(lambda p: dist.log_prob(p, action, mask), logits) == 0
    assert _reduce_ops(lambda p: dist.entropy(p, mask), logits) == 0
    assert _reduce_ops(jax.grad(loss), logits) == 0
