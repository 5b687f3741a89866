"""What one agent's network sees: its observation, optionally with a one-hot agent id, and the
encoder settings for structured observations. Shared by every algorithm's networks."""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp

from jmarl.agents.sharing import agent_one_hot
from jmarl.config_check import ConfigError, check_range, flag
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.nn.activations import ACTIVATIONS
from jmarl.nn.encoders import EncoderConfig
from jmarl.types import PyTree


class InputConfig(Protocol):
    """The config fields that shape an agent's input (every algorithm config has them)."""

    @property
    def agent_id_input(self) -> bool: ...
    @property
    def encoder_features(self) -> int: ...
    @property
    def embed_dim(self) -> int: ...
    @property
    def cnn_channels(self) -> tuple[int, ...]: ...
    @property
    def activation(self) -> str: ...


def actor_inputs(obs: PyTree, cfg: InputConfig, num_agents: int, batch_dims: int = 0) -> PyTree:
    """Per-agent input ``[*B, N, ...]``: the observation, plus a one-hot id if
    ``cfg.agent_id_input`` (``batch_dims`` leading axes ``B``)."""
    if cfg.agent_id_input:
        lead = jax.tree.leaves(obs)[0].shape[:batch_dims]
        ids = jnp.broadcast_to(agent_one_hot(num_agents), (*lead, num_agents, num_agents))
        return {"obs": obs, "agent_id": ids}
    return obs


def actor_input_space(spec: EnvSpec, cfg: InputConfig) -> spaces.Space:
    """The space of one agent's :func:`actor_inputs` row."""
    if cfg.agent_id_input:
        agent_id = spaces.Box(0.0, 1.0, (spec.num_agents,))
        return spaces.Dict.from_mapping({"obs": spec.observation_space, "agent_id": agent_id})
    return spec.observation_space


def encoder_config(cfg: InputConfig) -> EncoderConfig:
    """The encoder settings of ``cfg`` (used for structured observations only)."""
    return EncoderConfig(cfg.encoder_features, cfg.embed_dim, cfg.cnn_channels, cfg.activation)


def check_network_fields(cfg: InputConfig) -> None:
    """The network fields every algorithm config has, checked in its ``__post_init__``:
    positive widths, at least one hidden and one CNN layer, a known activation."""
    for name in ("encoder_features", "embed_dim", "hidden_sizes", "cnn_channels"):
        check_range(cfg, name, 1)
    for name in ("hidden_sizes", "cnn_channels"):
        if not getattr(cfg, name):
            owner = type(cfg).__name__
            raise ConfigError(f"{owner}.{name} ({flag(name)}): needs at least one width")
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation {cfg.activation!r}; expected {', '.join(ACTIVATIONS)}"
        )
