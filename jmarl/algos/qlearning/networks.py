"""Per-agent Q networks over a policy mapping, and the mixer that combines them.

Agent ``i``'s utility ``Q_i(o_i, .)`` sees only its own observation (decentralised
execution); the mixer (:mod:`jmarl.critics.mixers`) sees every agent's chosen utility and,
for QMIX, the global state — in training only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.agents.inputs import actor_input_space, actor_inputs, encoder_config
from jmarl.agents.sharing import PolicyMapping, share
from jmarl.algos.qlearning.config import QConfig
from jmarl.config_check import ConfigError
from jmarl.critics.mixers import make_qmix_mixer, make_vdn_mixer
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.nn.encoders import needs_encoder
from jmarl.nn.network import Network
from jmarl.nn.networks import make_q_network
from jmarl.types import Array, Params, PRNGKey, PyTree


class QParams(NamedTuple):
    """``agents``: one entry per sharing block; ``mixer``: the mixer's parameters (an empty
    dict for VDN and for independent learners)."""

    agents: tuple[Params, ...]
    mixer: Params


class QNetworks(NamedTuple):
    """Pure functions of multi-agent Q-learning.

    * ``init(key) -> QParams``
    * ``q_values(agent_params, obs [*B, N, ...], batch_dims=0) -> f32[*B, N, A]``
      (feed-forward only)
    * ``q_step(agent_params, h [N, H], obs [N, ...], reset bool[N]) -> (h, f32[N, A])``:
      one step of recurrent utilities (the carry restarts from zeros where ``reset``);
      feed-forward utilities pass ``h`` through
    * ``mix(mixer_params, q f32[*B, N], state f32[*B, S], batch_dims=0) -> f32[*B]``, or
      None for independent learners (``mixer="none"``)
    """

    init: Callable[[PRNGKey], QParams]
    q_values: Callable[..., Array]
    mix: Callable[..., Array] | None
    num_actions: int
    q_step: Callable[..., tuple[Array, Array]]
    gru_size: int | None = None


def check_env(spec: EnvSpec, cfg: QConfig, algo: str) -> int:
    """The number of actions; a :class:`ConfigError` naming the mismatch when the env does not
    suit Q-learning with ``cfg.mixer`` (``algo`` is the name the user chose)."""
    space = spec.action_space
    if not isinstance(space, spaces.Discrete):
        raise ConfigError(
            f"{algo} needs discrete actions: env {spec.name!r} has {type(space).__name__} "
            "actions (for continuous actions use ippo, mappo or maddpg; JAX MPE envs take "
            "--continuous-actions false)"
        )
    if cfg.mixer == "qmix" and (len(spec.state_space.shape) != 1 or spec.state_space.shape[0] < 1):
        raise ConfigError(
            f"{algo}'s mixer conditions on the global state, but env {spec.name!r} has "
            f"state of shape {spec.state_space.shape} (a non-empty vector is needed)"
        )
    return int(space.n)


def make_q_networks(
    spec: EnvSpec, mapping: PolicyMapping, cfg: QConfig, algo: str = "q-learning"
) -> QNetworks:
    """Builds the Q networks for ``spec`` (parameters shared according to ``mapping``) and
    ``cfg.mixer``'s mixer."""
    n, num_actions = spec.num_agents, check_env(spec, cfg, algo)
    example = jax.tree.map(
        lambda a: a[0], actor_inputs(spaces.zeros(spec.observation_space, (n,)), cfg, n)
    )
    encode = needs_encoder(spec.observation_space)
    net = make_q_network(
        example,
        num_actions,
        cfg.hidden_sizes,
        cfg.activation,
        input_space=actor_input_space(spec, cfg) if encode else None,
        encoder=encoder_config(cfg) if encode else None,
        gru_size=cfg.gru_size if cfg.recurrent else None,
    )
    agents = share(net, mapping)
    mixer = _mixer(spec, cfg)

    def init(key: PRNGKey) -> QParams:
        k_agents, k_mixer = jax.random.split(key)
        return QParams(agents.init(k_agents), mixer.init(k_mixer) if mixer else {})

    def q_values(params: tuple[Params, ...], obs: PyTree, batch_dims: int = 0) -> Array:
        if cfg.recurrent:
            raise TypeError("recurrent utilities have no stateless q_values: use q_step")
        out: Array = agents.apply(
            params, actor_inputs(obs, cfg, n, batch_dims), batch_dims=batch_dims
        )
        return out

    def q_step(
        params: tuple[Params, ...], h: Array, obs: PyTree, reset: Array
    ) -> tuple[Array, Array]:
        if not cfg.recurrent:
            return h, q_values(params, obs)
        out: tuple[Array, Array] = agents.apply(params, h, actor_inputs(obs, cfg, n), reset)
        return out

    mix = None
    if mixer is not None:

        def mix(params: Params, q: Array, state: Array, batch_dims: int = 0) -> Array:
            apply = mixer.apply
            for _ in range(batch_dims):
                apply = jax.vmap(apply, in_axes=(None, 0, 0))
            out: Array = apply(params, q, state.astype(jnp.float32))
            return out

    gru = cfg.gru_size if cfg.recurrent else None
    return QNetworks(init, q_values, mix, num_actions, q_step, gru)


def _mixer(spec: EnvSpec, cfg: QConfig) -> Network | None:
    if cfg.mixer == "vdn":
        return make_vdn_mixer()
    if cfg.mixer == "qmix":
        state_dim = spec.state_space.shape[0]
        return make_qmix_mixer(spec.num_agents, state_dim, cfg.mixer_embed_dim, cfg.mixer_hidden)
    return None
