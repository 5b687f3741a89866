"""The two-step cooperative matrix game of the QMIX paper (Rashid et al. 2018, section 6.1).

Two agents, two actions each, two steps. In the first step (state ``1``) only agent 0's action
matters: action 0 leads to state ``2A``, action 1 to state ``2B``; no reward. In the second
step both agents act and both receive the team payoff::

    2A: 7 for every joint action          2B:  a1=0  a1=1
                                          a0=0   0     1
                                          a0=1   1     8

The optimal joint policy goes to ``2B`` and plays ``(1, 1)`` (return 8). Value decomposition
by a sum (VDN) cannot represent 2B's payoffs and, with uniform exploration, prefers the safe
7 of ``2A``; QMIX's monotonic mixer conditioned on the state can, and finds 8. Every agent
observes the state (one-hot over ``1``, ``2A``, ``2B``), which is also the global state.

>>> env = make_two_step()
>>> env.spec.num_agents, env.spec.max_steps, OPTIMAL_RETURN
(2, 2, 8.0)
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.types import Array, PRNGKey

PAYOFF_2A = ((7.0, 7.0), (7.0, 7.0))
PAYOFF_2B = ((0.0, 1.0), (1.0, 8.0))
OPTIMAL_RETURN = 8.0
"""Per-agent return of the optimal joint policy (state 2B, joint action (1, 1))."""
SAFE_RETURN = 7.0
"""Per-agent return of the best policy through state 2A (VDN's answer in the paper)."""


class TwoStepState(NamedTuple):
    """``t`` ``i32[]`` (0 or 1) and ``node`` ``i32[]``: 0 = state 1, 1 = 2A, 2 = 2B."""

    t: Array
    node: Array


def make_two_step(continuous_actions: bool = False) -> Env:
    """Builds the two-step game (see the module doc).

    :param continuous_actions: must be False (each agent picks one of two actions).
    :raises ValueError: continuous actions.
    """
    if continuous_actions:
        raise ValueError("two_step has discrete actions only (continuous_actions=True given)")
    payoff = jnp.asarray([PAYOFF_2A, PAYOFF_2B], jnp.float32)

    def observe(state: TwoStepState, reward: Array, end: Array) -> TimeStep:
        one_hot = jnp.eye(3, dtype=jnp.float32)[state.node]
        return TimeStep(
            obs=jnp.broadcast_to(one_hot, (2, 3)),
            state=one_hot,
            reward=jnp.broadcast_to(reward, (2,)),
            terminated=jnp.broadcast_to(end, (2,)),
            truncated=jnp.zeros((2,), bool),
            done=end,
            alive=jnp.ones((2,), bool),
            action_mask=None,
        )

    def reset(key: PRNGKey) -> tuple[TwoStepState, TimeStep]:
        del key
        state = TwoStepState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return state, observe(state, jnp.zeros((), jnp.float32), jnp.zeros((), bool))

    def step(key: PRNGKey, state: TwoStepState, actions: Array) -> tuple[TwoStepState, TimeStep]:
        del key
        first = state.t == 0
        node = jnp.where(first, 1 + actions[0], state.node)
        reward = jnp.where(
            first, 0.0, payoff[jnp.maximum(state.node - 1, 0), actions[0], actions[1]]
        )
        nxt = TwoStepState(state.t + 1, node)
        return nxt, observe(nxt, reward, ~first)

    spec = EnvSpec(
        name="two_step",
        agent_ids=("agent_0", "agent_1"),
        observation_space=spaces.Box(0.0, 1.0, (3,)),
        action_space=spaces.Discrete(2),
        state_space=spaces.Box(0.0, 1.0, (3,)),
        max_steps=2,
    )
    return Env(spec, reset, auto_reset(reset, step), step)
