"""Environment wrappers: pure functions from an ``Env`` to an ``Env``."""

from __future__ import annotations

import jax.numpy as jnp

from jmarl.env import spaces
from jmarl.env.base import Env, EnvState, StepFn, TimeStep
from jmarl.types import Array, PRNGKey, PyTree


def zero_observation(env: Env, key: str, where: bool | Array = True) -> Env:
    """``env`` with the Dict observation entry ``key`` replaced by zeros (an ablation).

    Shapes, dtypes and spaces are unchanged, so a policy built for ``env`` runs as it is but
    learns nothing from ``key``: this measures how much an observation part is worth.

    :param where: zero the entry only where this (``bool[]``, may be traced) is True. A traced
        flag lets one compiled program train on the intact and the ablated env side by side::

            run = lambda off: make_ppo(zero_observation(env, "image", off), cfg, steps).train(k)
            out = jax.jit(jax.vmap(run))(jnp.array([False, True]))

    :raises ValueError: ``env``'s observation space is not a Dict with entry ``key``.
    """
    space = env.spec.observation_space
    if not isinstance(space, spaces.Dict) or key not in space.keys():
        raise ValueError(f"zero_observation: {env.spec.name!r} has no observation entry {key!r}")

    def blank(ts: TimeStep) -> TimeStep:
        obs = dict(ts.obs)
        obs[key] = jnp.where(where, spaces.zeros(space[key], (env.spec.num_agents,)), obs[key])
        return ts._replace(obs=obs)

    def reset(rng: PRNGKey) -> tuple[EnvState, TimeStep]:
        state, ts = env.reset(rng)
        return state, blank(ts)

    def wrap(step: StepFn) -> StepFn:
        def stepped(rng: PRNGKey, state: EnvState, actions: PyTree) -> tuple[EnvState, TimeStep]:
            state, ts = step(rng, state, actions)
            return state, blank(ts)

        return stepped

    no_reset = None if env.step_without_reset is None else wrap(env.step_without_reset)
    return Env(env.spec, reset, wrap(env.step), no_reset)


__all__ = ["zero_observation"]
