"""Evaluating a trained policy of any algorithm: whole episodes in parallel, one jitted program."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.algos.base import Trainer
from jmarl.env.base import Env, step_batch
from jmarl.types import Array, Params, PRNGKey


class EvalResult(NamedTuple):
    """Per-episode results: ``returns`` ``f32[K]`` (per-agent return, mean over agents),
    ``lengths`` ``i32[K]``, ``agent_returns`` ``f32[N, K]`` (each agent's return)."""

    returns: Array
    lengths: Array
    agent_returns: Array


def random_legal_actions(key: PRNGKey, action_mask: Array) -> Array:
    """Uniformly random legal actions ``i32[...]`` from ``action_mask`` ``bool[..., A]``."""
    return jax.random.categorical(key, jnp.where(action_mask, 0.0, -jnp.inf))


def make_evaluate(
    env: Env,
    trainer: Trainer,
    episodes: int,
    deterministic: bool = False,
    versus_random: bool = False,
) -> Callable[..., EvalResult]:
    """Returns ``evaluate(params, key) -> EvalResult`` running ``episodes`` episodes with
    ``trainer.act`` (``params`` from ``trainer.acting_params``).

    Each of ``episodes`` envs runs ``spec.max_steps`` steps; only its first episode counts.
    ``versus_random``: ``evaluate(params, key, seat)``, the policy plays only agent ``seat``
    (an ``int`` or a traced ``i32[]``: one program serves every seat); the others play
    uniformly random legal actions (discrete action spaces with action masks, e.g. games).
    """

    env_step = step_batch(env)

    def evaluate(params: Params, key: PRNGKey, seat: Array | int = 0) -> EvalResult:
        k_reset, k_run = jax.random.split(key)
        state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))

        def step(carry: tuple, key: PRNGKey) -> tuple[tuple, None]:
            state, ts, policy_carry, ret, length, running = carry
            k_act, k_env, k_random = jax.random.split(key, 3)
            out = trainer.act(params, ts, k_act, policy_carry, deterministic)
            action = out.action
            if versus_random:
                mine = jnp.arange(env.spec.num_agents) == seat
                action = jnp.where(mine, action, random_legal_actions(k_random, ts.action_mask))
            state, ts = env_step(k_env, state, action)
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
        return EvalResult(ret.mean(axis=-1), length, ret.T)

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
