"""The LAPACK-free orthogonal initializer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.nn.initializers import gram_schmidt, orthogonal


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (64, 64), (2, 3, 4), (18, 1)])
def test_orthogonal_rows_or_columns(shape: tuple[int, ...]) -> None:
    w = np.asarray(orthogonal(1.5)(jax.random.key(0), shape)).reshape(-1, shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(gram.shape[0]), atol=1e-4)


def test_gram_schmidt_equals_qr_with_positive_diagonal() -> None:
    a = jax.random.normal(jax.random.key(1), (6, 4))
    q, r = np.linalg.qr(np.asarray(a))
    q = q * np.sign(np.diag(r))
    np.testing.assert_allclose(gram_schmidt(a), q, atol=1e-5)


def test_independent_training_program_has_no_lapack_call() -> None:
    # a batched LAPACK QR inside the jitted loop occasionally deadlocked XLA's CPU runtime
    env = jmarl.make("simple_spread", num_agents=3, max_steps=5)
    cfg = jmarl.PPOConfig(num_envs=2, rollout_length=5, num_minibatches=1, hidden_sizes=(8,))
    trainer = jmarl.make_ppo(env, cfg, 10, "independent")
    hlo = jax.jit(jax.vmap(trainer.train)).lower(jax.random.split(jax.random.key(0), 2))
    text = hlo.as_text().lower()
    assert "lapack" not in text and "geqrf" not in text and "householder" not in text
    assert bool(jnp.isfinite(orthogonal()(jax.random.key(0), (4, 4))).all())
