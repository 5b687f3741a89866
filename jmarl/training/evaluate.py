"""Evaluating a trained actor: whole episodes in parallel, one jitted program."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.algos.ppo.networks import ActorCritic
from jmarl.env.base import Env
from jmarl.types import Array, Params, PRNGKey


class EvalResult(NamedTuple):
    """Per-episode results: ``returns`` ``f32[K]`` (per-agent return, mean over agents),
    ``lengths`` ``i32[K]``."""

    returns: Array
    lengths: Array


def make_evaluate(
    env: Env, ac: ActorCritic, episodes: int, deterministic: bool = False
) -> Callable[[Params, PRNGKey], EvalResult]:
    """Returns ``evaluate(actor_params, key) -> EvalResult`` running ``episodes`` episodes.

    Each of ``episodes`` envs runs ``spec.max_steps`` steps; only its first episode counts.
    """
    policy = jax.vmap(ac.policy, in_axes=(None, 0))
    dist = ac.distribution

    def evaluate(actor_params: Params, key: PRNGKey) -> EvalResult:
        k_reset, k_run = jax.random.split(key)
        state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))

        def step(carry: tuple, key: PRNGKey) -> tuple[tuple, None]:
            state, ts, ret, length, running = carry
            k_act, k_env = jax.random.split(key)
            params = policy(actor_params, ts.obs)
            if deterministic:
                action = dist.mode(params, ts.action_mask)
            else:
                action = dist.sample(k_act, params, ts.action_mask)
            state, ts = jax.vmap(env.step)(jax.random.split(k_env, episodes), state, action)
            ret = ret + running[:, None] * ts.reward
            length = length + running.astype(jnp.int32)
            running = running & ~ts.done
            return (state, ts, ret, length, running), None

        n = env.spec.num_agents
        carry = (
            state,
            ts,
            jnp.zeros((episodes, n)),
            jnp.zeros((episodes,), jnp.int32),
            jnp.ones((episodes,), bool),
        )
        keys = jax.random.split(k_run, env.spec.max_steps)
        (_, _, ret, length, _), _ = jax.lax.scan(step, carry, keys)
        return EvalResult(ret.mean(axis=-1), length)

    return evaluate
