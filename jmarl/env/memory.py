"""A memory task: recall a cue seen ``max_steps - 1`` steps ago. Feed-forward policies cannot
solve it.

Each episode has ``max_steps`` steps. At step 0 every agent sees its own random cue
``c_i in {0, ..., C-1}`` (one-hot); at later steps the cue part of the observation is zeros.
The last step is flagged in the observation (``query``), and there the agent's action is
rewarded ``1`` if it equals its cue, else ``0``; every other step gives 0.

At the query step a memoryless policy sees the same observation whatever the cue was, so its
expected per-agent return is at most ``1 / C`` (:func:`memoryless_bound`); a policy that
remembers the cue scores 1. Agents are independent, so a shared policy can solve it too.

>>> env = make_memory(num_agents=2, max_steps=3, num_cues=4)
>>> env.spec.max_steps, memoryless_bound(4)
(3, 0.25)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.types import Array, PRNGKey


class MemoryState(NamedTuple):
    """``t`` ``i32[]`` (step within the episode) and ``cue`` ``i32[N]``."""

    t: Array
    cue: Array


def memoryless_bound(num_cues: int) -> float:
    """The best expected per-agent return of any policy without memory: ``1 / num_cues``."""
    return 1.0 / num_cues


def make_memory(
    num_agents: int = 2, max_steps: int = 3, continuous_actions: bool = False, num_cues: int = 2
) -> Env:
    """Builds the memory task (see the module doc).

    :param max_steps: episode length: the cue is shown at step 0 and asked for at step
        ``max_steps - 1``; >= 2.
    :param continuous_actions: must be False (the answer is one of ``num_cues`` actions).
    :param num_cues: how many cues (and actions) there are; >= 2.
    :raises ValueError: ``num_agents < 1``, ``max_steps < 2``, ``num_cues < 2`` or
        continuous actions.
    """
    n, length, c = int(num_agents), int(max_steps), int(num_cues)
    if continuous_actions:
        raise ValueError("memory has discrete actions only (continuous_actions=True given)")
    if n < 1 or length < 2 or c < 2:
        raise ValueError(
            f"memory task needs num_agents >= 1, max_steps >= 2, num_cues >= 2; "
            f"got {num_agents}, {max_steps}, {num_cues}"
        )
    zeros_n = jnp.zeros((n,), bool)

    def observe(state: MemoryState, reward: Array, end: Array) -> TimeStep:
        shown = jax.nn.one_hot(state.cue, c) * (state.t == 0)
        query = jnp.broadcast_to(state.t == length - 1, (n, 1)).astype(jnp.float32)
        return TimeStep(
            obs=jnp.concatenate([shown, query], axis=1),
            state=jnp.concatenate([jax.nn.one_hot(state.cue, c).ravel(), state.t[None] / length]),
            reward=reward,
            terminated=zeros_n,
            truncated=jnp.broadcast_to(end, (n,)),
            done=end,
            alive=jnp.ones((n,), bool),
            action_mask=None,
        )

    def reset(key: PRNGKey) -> tuple[MemoryState, TimeStep]:
        state = MemoryState(jnp.zeros((), jnp.int32), jax.random.randint(key, (n,), 0, c))
        return state, observe(state, jnp.zeros((n,), jnp.float32), jnp.zeros((), bool))

    def step(key: PRNGKey, state: MemoryState, actions: Array) -> tuple[MemoryState, TimeStep]:
        del key
        end = state.t == length - 1
        reward = (end & (actions == state.cue)).astype(jnp.float32)
        nxt = MemoryState(state.t + 1, state.cue)
        return nxt, observe(nxt, reward, end)

    spec = EnvSpec(
        name="memory",
        agent_ids=tuple(f"agent_{i}" for i in range(n)),
        observation_space=spaces.Box(0.0, 1.0, (c + 1,)),
        action_space=spaces.Discrete(c),
        state_space=spaces.Box(0.0, 1.0, (n * c + 1,)),
        max_steps=length,
    )
    return Env(spec, reset, auto_reset(reset, step), step)
