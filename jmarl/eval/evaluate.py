"""Evaluating a trained policy of any algorithm: whole episodes in parallel, one jitted program."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.algos.base import Trainer
from jmarl.env.base import Env
from jmarl.types import Array, Params, PRNGKey


class EvalResult(NamedTuple):
    """Per-episode results: ``returns`` ``f32[K]`` (per-agent return, mean over agents),
    ``lengths`` ``i32[K]``."""

    returns: Array
    lengths: Array


def make_evaluate(
    env: Env, trainer: Trainer, episodes: int, deterministic: bool = False
) -> Callable[[Params, PRNGKey], EvalResult]:
    """Returns ``evaluate(params, key) -> EvalResult`` running ``episodes`` episodes with
    ``trainer.act`` (``params`` from ``trainer.acting_params``).

    Each of ``episodes`` envs runs ``spec.max_steps`` steps; only its first episode counts.
    """

    def evaluate(params: Params, key: PRNGKey) -> EvalResult:
        k_reset, k_run = jax.random.split(key)
        state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))

        def step(carry: tuple, key: PRNGKey) -> tuple[tuple, None]:
            state, ts, policy_carry, ret, length, running = carry
            k_act, k_env = jax.random.split(key)
            out = trainer.act(params, ts, k_act, policy_carry, deterministic)
            state, ts = jax.vmap(env.step)(jax.random.split(k_env, episodes), state, out.action)
            ret = ret + running[:, None] * ts.reward
            length = length + running.astype(jnp.int32)
            running = running & ~ts.done
            return (state, ts, out.carry, ret, length, running), None

        n = env.spec.num_agents
        carry = (
            state,
            ts,
            trainer.init_carry(episodes),
            jnp.zeros((episodes, n)),
            jnp.zeros((episodes,), jnp.int32),
            jnp.ones((episodes,), bool),
        )
        keys = jax.random.split(k_run, env.spec.max_steps)
        (*_, ret, length, _), _ = jax.lax.scan(step, carry, keys)
        return EvalResult(ret.mean(axis=-1), length)

    return evaluate


# Episodes evaluated at once by one compiled program: memory grows with this, not with the
# number of episodes asked for.
EVAL_CHUNK = 4096


def evaluate_in_chunks(
    run: Callable[[PRNGKey], EvalResult], episodes: int, size: int, key: PRNGKey
) -> EvalResult:
    """``episodes`` episodes as ``ceil(episodes / size)`` calls of ``run(key)``, which plays
    ``size`` episodes (on its last axis; leading axes such as seeds are kept). Results come
    back on the host (numpy), cut to ``episodes``.

    One call (``episodes <= size``) uses ``key`` itself, chunk ``i`` of several
    ``fold_in(key, i)``.
    """
    if episodes <= size:
        return EvalResult(*jax.device_get(run(key)))
    parts = [jax.device_get(run(jax.random.fold_in(key, i))) for i in range(-(-episodes // size))]
    return jax.tree.map(lambda *xs: np.concatenate(xs, axis=-1)[..., :episodes], *parts)
