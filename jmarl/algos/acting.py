"""Acting on observations that come from outside a jitted rollout: envs stepped on the host, or
a Tianshou ``Collector`` (through ``bridge``). Pure JAX; the callers bring numpy arrays.

A policy carry (``Trainer.init_carry``) restarts where an episode starts: :func:`act_step`
resets the carry rows of envs whose ``TimeStep.done`` is set before calling ``Trainer.act``,
as a jmarl env's first step after an auto-reset does inside a rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jmarl.algos.base import ActOutput, Carry, Trainer
from jmarl.env.base import TimeStep
from jmarl.types import Array, Params, PRNGKey, PyTree

__all__ = ["act_step", "make_act", "observed_timestep", "reset_carry"]


def reset_carry(carry: Carry, fresh: Carry, started: Array) -> Carry:
    """``carry`` ``[E, ...]`` with the rows where ``started`` (``bool[E]``) taken from
    ``fresh`` (``init_carry(E)``)."""

    def pick(f: Array, c: Array) -> Array:
        return jnp.where(started.reshape(started.shape + (1,) * (c.ndim - 1)), f, c)

    return jax.tree.map(pick, fresh, carry)


def observed_timestep(
    obs: PyTree,
    state: Array,
    alive: Array,
    action_mask: Array | None = None,
    done: Array | None = None,
    reward: Array | None = None,
    terminated: Array | None = None,
) -> TimeStep:
    """A ``[E, N, ...]`` :class:`TimeStep` for ``act``/``learn`` from observed arrays; rewards,
    flags and ``done`` that are not given are zero (``truncated`` always is: jmarl treats
    truncation as termination)."""
    e, n = alive.shape
    flags = jnp.zeros((e, n), bool)
    return TimeStep(
        obs=obs,
        state=state,
        reward=jnp.zeros((e, n), jnp.float32) if reward is None else reward,
        terminated=flags if terminated is None else terminated,
        truncated=flags if terminated is None else jnp.zeros_like(terminated),
        done=jnp.zeros((e,), bool) if done is None else done,
        alive=alive,
        action_mask=action_mask,
    )


def act_step(
    trainer: Trainer,
    params: Params,
    ts: TimeStep,
    key: PRNGKey,
    carry: Carry,
    deterministic: bool = False,
) -> ActOutput:
    """``trainer.act`` for ``[E]`` envs after the carry rows of envs with ``ts.done`` (a new
    episode starts) are set to ``init_carry`` rows. Traceable: call it inside ``jax.jit``."""
    done = jnp.asarray(ts.done)
    carry = reset_carry(carry, trainer.init_carry(done.shape[0]), done)
    return trainer.act(params, ts, key, carry, deterministic)


def make_act(
    trainer: Trainer, deterministic: bool = False
) -> Callable[[Params, TimeStep, PRNGKey, Carry], ActOutput]:
    """ONE jitted :func:`act_step`: ``act(params, ts, key, carry) -> ActOutput``."""

    @jax.jit
    def act(params: Params, ts: TimeStep, key: PRNGKey, carry: Carry) -> Any:
        return act_step(trainer, params, ts, key, carry, deterministic)

    return act
