"""A tiny environment whose every quantity can be computed by hand, for wiring tests.

``make_probe_env`` gives ``N`` agents, ``A`` discrete actions and episodes of exactly
``episode_length`` steps. At step ``t`` (0-based within the episode):

* agent ``i`` observes ``[one_hot(t, L), one_hot(i, N)]`` and the global state is
  ``[t / L, i-th agent alive flags...]``;
* agent ``i`` may take action ``a`` only where ``(a + t + i)`` is even (``action_mask``), so
  half of the actions are masked at every step and which half changes with ``t`` and ``i``;
* the reward of agent ``i`` is ``(i + 1) * (t + 1)`` when it takes an allowed action and
  ``MASKED_PENALTY`` when it takes a masked one — a masked action is visible in the reward;
* if ``death_step`` is given, the last agent terminates at that step (its transition at
  ``t = death_step`` has ``terminated=True`` and its reward), is not alive afterwards and
  receives reward 0 until the episode ends;
* every agent is truncated at ``t = L - 1``; the env auto-resets.

So an agent's return over a full episode is ``(i + 1) * L (L + 1) / 2`` (the dead agent's
``N * (d + 1) (d + 2) / 2``), which :func:`probe_episode_return` computes.

>>> env = make_probe_env(num_agents=2, episode_length=3)
>>> probe_episode_return(env.spec.num_agents, 3)
9.0
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.types import Array, PRNGKey

MASKED_PENALTY = -1000.0


class ProbeState(NamedTuple):
    """``t`` ``i32[]`` (step within the episode) and ``alive`` ``bool[N]``."""

    t: Array
    alive: Array


def probe_episode_return(
    num_agents: int, episode_length: int, death_step: int | None = None
) -> float:
    """The per-agent return (mean over agents) of one episode with only allowed actions."""
    tri = lambda k: k * (k + 1) / 2  # 1 + 2 + ... + k
    returns = [(i + 1) * tri(episode_length) for i in range(num_agents)]
    if death_step is not None:
        returns[-1] = num_agents * tri(death_step + 1)
    return float(sum(returns) / num_agents)


def make_probe_env(
    num_agents: int = 2,
    num_actions: int = 4,
    episode_length: int = 3,
    death_step: int | None = None,
) -> Env:
    """Builds the probe env described in the module docstring.

    :raises ValueError: ``num_actions < 2`` (nothing could be masked), ``episode_length < 1``,
        or ``death_step`` outside ``[0, episode_length - 1)``.
    """
    n, a_n, length = num_agents, num_actions, episode_length
    if a_n < 2 or length < 1 or n < 1:
        raise ValueError("probe env needs num_agents >= 1, num_actions >= 2, episode_length >= 1")
    if death_step is not None and not 0 <= death_step < length - 1:
        raise ValueError(f"death_step must lie in [0, {length - 1}), got {death_step}")
    agents = jnp.arange(n)

    def observe(
        state: ProbeState, reward: Array, term: Array, trunc: Array, done: Array
    ) -> TimeStep:
        obs = jnp.concatenate(
            [jnp.broadcast_to(jax.nn.one_hot(state.t, length), (n, length)), jnp.eye(n)], axis=1
        )
        mask = (jnp.arange(a_n)[None, :] + state.t + agents[:, None]) % 2 == 0
        return TimeStep(
            obs=obs,
            state=jnp.concatenate([state.t[None] / length, state.alive.astype(jnp.float32)]),
            reward=reward,
            terminated=term,
            truncated=trunc,
            done=done,
            alive=state.alive,
            action_mask=mask,
        )

    def reset(key: PRNGKey) -> tuple[ProbeState, TimeStep]:
        del key
        state = ProbeState(jnp.zeros((), jnp.int32), jnp.ones((n,), bool))
        zeros = jnp.zeros((n,), bool)
        return state, observe(state, jnp.zeros((n,), jnp.float32), zeros, zeros, zeros.any())

    def step(key: PRNGKey, state: ProbeState, actions: Array) -> tuple[ProbeState, TimeStep]:
        del key
        allowed = (actions + state.t + agents) % 2 == 0
        reward = jnp.where(allowed, (agents + 1.0) * (state.t + 1.0), MASKED_PENALTY)
        reward = jnp.where(state.alive, reward, 0.0).astype(jnp.float32)
        dies = (agents == n - 1) & (state.t == (-1 if death_step is None else death_step))
        term = dies & state.alive
        trunc = jnp.broadcast_to(state.t == length - 1, (n,)) & state.alive
        nxt = ProbeState(state.t + 1, state.alive & ~term)
        return nxt, observe(nxt, reward, term, trunc, state.t == length - 1)

    obs_space = spaces.Box(0.0, 1.0, (length + n,))
    spec = EnvSpec(
        name="probe",
        agent_ids=tuple(f"agent_{i}" for i in range(n)),
        observation_space=obs_space,
        action_space=spaces.Discrete(a_n),
        state_space=spaces.Box(0.0, 1.0, (1 + n,)),
        max_steps=length,
    )
    return Env(spec, reset, auto_reset(reset, step), step)
