"""Centralised action-value critics ``Q_i(s, o_i, a_1..a_N)`` (MADDPG-style).

Agent ``i``'s critic sees the global state, its own observation and the joint action of
every agent of the env (continuous actions as they are, discrete ones one-hot), so it can
credit agent ``i``'s action in the context of the others'. It is used in training only;
actors still see only their own observation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jmarl.agents.inputs import InputConfig, actor_input_space, actor_inputs, encoder_config
from jmarl.agents.sharing import PolicyMapping, share
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.nn.encoders import needs_encoder
from jmarl.nn.network import Network
from jmarl.nn.networks import make_critic
from jmarl.types import Array, Params, PRNGKey, PyTree


def joint_action_features(actions: Array) -> Array:
    """``[*B, N, K]`` per-agent action features -> ``[*B, N, N * K]``: each agent's row holds
    the whole joint action (the same for every agent of an env)."""
    n = actions.shape[-2]
    flat = actions.reshape(*actions.shape[:-2], n * actions.shape[-1])
    return jnp.broadcast_to(flat[..., None, :], (*actions.shape[:-2], n, flat.shape[-1]))


def central_q_inputs(
    obs: PyTree, state: Array, joint: Array, cfg: InputConfig, num_agents: int, batch_dims: int = 0
) -> PyTree:
    """Per-agent critic input ``[*B, N, ...]``: own observation (and id), the global state
    ``[*B, S]`` and the joint action features ``[*B, N, N * K]`` (from
    :func:`joint_action_features`, or built per agent)."""
    lead, rest = state.shape[:batch_dims], state.shape[batch_dims:]
    per_agent = jnp.broadcast_to(jnp.expand_dims(state, batch_dims), (*lead, num_agents, *rest))
    own = actor_inputs(obs, cfg, num_agents, batch_dims)
    return {"own": own, "state": per_agent, "actions": joint}


def make_central_q(
    spec: EnvSpec,
    mapping: PolicyMapping,
    cfg: InputConfig,
    action_features: int,
    hidden: tuple[int, ...],
) -> tuple[Network, Callable[..., Array]]:
    """Agent critics lifted to all agents of ``mapping`` and ``q(params, obs, state, joint,
    batch_dims=0) -> f32[*B, N]`` (``joint`` ``[*B, N, N * action_features]``).

    :param action_features: one agent's action width (``D`` continuous, ``A`` one-hot).
    """
    n = spec.num_agents
    obs = spaces.zeros(spec.observation_space, (n,))
    state = jnp.zeros(spec.state_space.shape, jnp.float32)
    joint = jnp.zeros((n, n * action_features), jnp.float32)
    example = jax.tree.map(lambda a: a[0], central_q_inputs(obs, state, joint, cfg, n))
    encode = needs_encoder(spec.observation_space)
    space = None
    if encode:
        space = spaces.Dict.from_mapping(
            {
                "own": actor_input_space(spec, cfg),
                "state": spec.state_space,
                "actions": spaces.Box(float("-inf"), float("inf"), (n * action_features,)),
            }
        )
    critic = make_critic(
        example,
        hidden,
        cfg.activation,
        input_space=space,
        encoder=encoder_config(cfg) if encode else None,
    )
    critic_n = share(critic, mapping)

    def q(
        params: tuple[Params, ...], obs: PyTree, state: Array, joint: Array, batch_dims: int = 0
    ) -> Array:
        x = central_q_inputs(obs, state, joint, cfg, n, batch_dims)
        out: Array = critic_n.apply(params, x, batch_dims=batch_dims)
        return out

    def init(key: PRNGKey) -> tuple[Params, ...]:
        out: tuple[Params, ...] = critic_n.init(key)
        return out

    return Network(init, critic_n.apply), q
