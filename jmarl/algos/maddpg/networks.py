"""MADDPG's networks: deterministic actors on own observations, centralised critics, and how
actor outputs become env actions and critic inputs (:class:`ActionCodec`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.agents.inputs import actor_input_space, actor_inputs, encoder_config
from jmarl.agents.sharing import PolicyMapping, share
from jmarl.algos.maddpg.config import MADDPGConfig
from jmarl.config_check import ConfigError
from jmarl.critics.central_q import make_central_q
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.nn.distributions import masked_logits
from jmarl.nn.encoders import needs_encoder
from jmarl.nn.networks import make_actor
from jmarl.types import Array, Params, PRNGKey, PyTree


class ActionCodec(NamedTuple):
    """Actor outputs ``[..., P]`` <-> env actions <-> critic features ``[..., K]``.

    * ``act(out, key, noise, mask, deterministic) -> action``: the env action, explored
      (Gaussian noise of ``noise`` half-ranges, or a softmax sample) unless deterministic
    * ``features(action) -> [..., K]``: a stored action as the critic sees it
    * ``relaxed(out, key, mask) -> [..., K]``: differentiable features of the actor's action
      (the squashed action; a straight-through Gumbel-softmax one-hot)
    * ``greedy(out, mask) -> [..., K]``: features of the deterministic action
    """

    param_size: int
    width: int
    act: Callable[..., Array]
    features: Callable[[Array], Array]
    relaxed: Callable[..., Array]
    greedy: Callable[..., Array]


def check_env(spec: EnvSpec) -> None:
    """A :class:`ConfigError` naming the mismatch when MADDPG cannot act in ``spec``'s action
    space (bounded ``Box`` or ``Discrete`` only)."""
    space = spec.action_space
    if isinstance(space, spaces.Box):
        low, high = (
            np.broadcast_to(space.low, space.shape),
            np.broadcast_to(space.high, space.shape),
        )
        if len(space.shape) != 1 or not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ConfigError(
                f"maddpg needs a bounded 1-d Box action space: env {spec.name!r} has {space}"
            )
    elif not isinstance(space, spaces.Discrete):
        raise ConfigError(
            f"maddpg acts in Box or Discrete action spaces: env {spec.name!r} has "
            f"{type(space).__name__} actions"
        )


def make_codec(space: spaces.Space, temperature: float) -> ActionCodec:
    """The :class:`ActionCodec` of a bounded ``Box`` or a ``Discrete`` space."""
    if isinstance(space, spaces.Discrete):
        return _discrete_codec(int(space.n), temperature)
    assert isinstance(space, spaces.Box)
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
    half = (high - low) / 2

    def squash(out: Array) -> Array:
        return low + (jnp.tanh(out) + 1.0) * half

    def act(out: Array, key: PRNGKey, noise: Array, mask: Array, deterministic: bool) -> Array:
        del mask
        if deterministic:
            return squash(out)
        noisy = squash(out) + noise * half * jax.random.normal(key, out.shape)
        return jnp.clip(noisy, low, high)

    d = space.shape[0]
    return ActionCodec(
        d, d, act, lambda a: a, lambda out, key, mask: squash(out), lambda out, mask: squash(out)
    )


def _discrete_codec(n: int, temperature: float) -> ActionCodec:
    def act(out: Array, key: PRNGKey, noise: Array, mask: Array, deterministic: bool) -> Array:
        del noise
        logits = masked_logits(out, mask)
        if deterministic:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)

    def relaxed(out: Array, key: PRNGKey, mask: Array) -> Array:
        gumbel = jax.random.gumbel(key, out.shape)
        soft = jax.nn.softmax((masked_logits(out, mask) + gumbel) / temperature, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), n)
        return hard + soft - jax.lax.stop_gradient(soft)

    def greedy(out: Array, mask: Array) -> Array:
        return jax.nn.one_hot(jnp.argmax(masked_logits(out, mask), axis=-1), n)

    return ActionCodec(n, n, act, lambda a: jax.nn.one_hot(a, n), relaxed, greedy)


class MADDPGNetworks(NamedTuple):
    """* ``init(key) -> (actor_params, critic_params)`` (one entry per block each)
    * ``actor(params, obs [*B, N, ...], batch_dims=0) -> f32[*B, N, P]``
    * ``q(params, obs [*B, N, ...], state [*B, S], joint [*B, N, N*K], batch_dims=0) ->
      f32[*B, N]``"""

    init: Callable[[PRNGKey], tuple[tuple[Params, ...], tuple[Params, ...]]]
    actor: Callable[..., Array]
    q: Callable[..., Array]
    codec: ActionCodec


def make_networks(spec: EnvSpec, mapping: PolicyMapping, cfg: MADDPGConfig) -> MADDPGNetworks:
    """Actors and critics for ``spec``, parameters shared according to ``mapping``."""
    check_env(spec)
    n = spec.num_agents
    codec = make_codec(spec.action_space, cfg.gumbel_temperature)
    obs = spaces.zeros(spec.observation_space, (n,))
    encode = needs_encoder(spec.observation_space)
    actor = share(
        make_actor(
            jax.tree.map(lambda a: a[0], actor_inputs(obs, cfg, n)),
            codec.param_size,
            cfg.hidden_sizes,
            cfg.activation,
            input_space=actor_input_space(spec, cfg) if encode else None,
            encoder=encoder_config(cfg) if encode else None,
        ),
        mapping,
    )
    critic, q = make_central_q(spec, mapping, cfg, codec.width, cfg.hidden_sizes)

    def init(key: PRNGKey) -> tuple[tuple[Params, ...], tuple[Params, ...]]:
        k_actor, k_critic = jax.random.split(key)
        return actor.init(k_actor), critic.init(k_critic)

    def apply_actor(params: tuple[Params, ...], obs: PyTree, batch_dims: int = 0) -> Array:
        out: Array = actor.apply(
            params, actor_inputs(obs, cfg, n, batch_dims), batch_dims=batch_dims
        )
        return out

    return MADDPGNetworks(init, apply_actor, q, codec)
