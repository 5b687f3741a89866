"""Actor-critic networks for multi-agent PPO over a policy mapping.

The actor of agent ``i`` sees only agent ``i``'s observation (decentralised execution).
The critic sees the agent's observation (IPPO) or the global state plus the agent's
observation (MAPPO). Both follow the same agent -> policy mapping.

A flat ``Box`` observation is flattened straight into the MLPs. Any other observation space
(``Dict``, ``Tuple``, an image ``Box``, discrete spaces) is first encoded by
:class:`~jmarl.nn.encoders.SpaceEncoder` over the whole actor / critic input space (so the
agent id and the global state get Dense layers of their own); action-mask entries of a Dict
observation are skipped, the env's ``ts.action_mask`` masks the action distribution instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.agents.inputs import actor_input_space, actor_inputs, encoder_config
from jmarl.agents.sharing import PolicyMapping, share, share_cross_agent
from jmarl.algos.ppo.config import PPOConfig
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.nn.cross_agent import make_cross_agent
from jmarl.nn.distributions import ActionDistribution, make_action_distribution
from jmarl.nn.encoders import needs_encoder
from jmarl.nn.network import Network
from jmarl.nn.networks import make_actor, make_critic, make_head, make_torso
from jmarl.types import Array, Params, PRNGKey, PyTree


class ActorCriticParams(NamedTuple):
    """One entry per sharing block in each of ``actor`` and ``critic``; ``aux`` the parameter
    sets of auxiliary losses by name (:mod:`jmarl.algos.auxiliary`), None without any."""

    actor: tuple[Params, ...]
    critic: tuple[Params, ...]
    aux: dict[str, Params] | None = None


class ActorCritic(NamedTuple):
    """Pure functions of a multi-agent actor-critic.

    * ``init(key) -> ActorCriticParams``
    * ``policy(actor_params, obs [*B, N, ...], batch_dims=0) -> dist params [*B, N, P]``
      (feed-forward only; ``batch_dims`` leading batch axes ``B``)
    * ``value(critic_params, obs [*B, N, ...], state [*B, S], batch_dims=0) -> values
      [*B, N]`` (feed-forward only)
    * ``policy_step(actor_params, h [N, H], obs [N, ...], reset bool[N]) -> (h, dist [N, P])``
    * ``value_step(critic_params, h [N, H], obs [N, ...], state [S], reset bool[N]) ->
      (h, values [N])``

    The step functions carry a recurrent state ``h`` (zeros where ``reset``); a feed-forward
    actor-critic (``gru_size`` None) passes ``h`` through unchanged (use ``()``).
    """

    init: Callable[[PRNGKey], ActorCriticParams]
    policy: Callable[..., Array]
    value: Callable[..., Array]
    distribution: ActionDistribution
    policy_step: Callable[..., tuple[PyTree, Array]]
    value_step: Callable[..., tuple[PyTree, Array]]
    gru_size: int | None = None


def critic_inputs(
    obs: PyTree, state: Array, cfg: PPOConfig, num_agents: int, batch_dims: int = 0
) -> PyTree:
    """Per-agent critic input ``[*B, N, ...]`` (global state ``[*B, S]`` broadcast to agents
    for MAPPO)."""
    x = actor_inputs(obs, cfg, num_agents, batch_dims)
    if cfg.centralized_critic:
        lead, rest = state.shape[:batch_dims], state.shape[batch_dims:]
        per_agent = jnp.broadcast_to(jnp.expand_dims(state, batch_dims), (*lead, num_agents, *rest))
        return {"own": x, "state": per_agent}
    return x


def critic_input_space(spec: EnvSpec, cfg: PPOConfig) -> spaces.Space:
    """The space of one agent's :func:`critic_inputs` row."""
    own = actor_input_space(spec, cfg)
    if cfg.centralized_critic:
        return spaces.Dict.from_mapping({"own": own, "state": spec.state_space})
    return own


def _mixed_critic(spec: EnvSpec, cfg: PPOConfig, mapping: PolicyMapping) -> Network:
    """The critic of ``critic_mixing``: each agent's torso features mixed with every agent's
    (:mod:`jmarl.nn.cross_agent`), then its head; lifted to all agents."""
    n, width = spec.num_agents, cfg.hidden_sizes[0]
    obs = spaces.zeros(spec.observation_space, (n,))
    state = jnp.zeros(spec.state_space.shape, jnp.float32)
    example = jax.tree.map(lambda a: a[0], critic_inputs(obs, state, cfg, n))
    encode = needs_encoder(spec.observation_space)
    torso = make_torso(
        example,
        width,
        cfg.activation,
        input_space=critic_input_space(spec, cfg) if encode else None,
        encoder=encoder_config(cfg) if encode else None,
    )
    head = make_head(width, cfg.hidden_sizes[1:], 1, cfg.activation, out_scale=1.0)
    net = share_cross_agent(make_cross_agent(torso, head, cfg.critic_mixing, width, n), mapping)
    return Network(net.init, lambda p, x, batch_dims=0: net.apply(p, x, batch_dims)[..., 0])


def _networks(spec: EnvSpec, cfg: PPOConfig, param_size: int) -> tuple[Network, Network]:
    """One agent's actor and critic (behind an encoder when the observation needs one)."""
    n = spec.num_agents
    obs = spaces.zeros(spec.observation_space, (n,))
    state = jnp.zeros(spec.state_space.shape, jnp.float32)
    one = lambda tree: jax.tree.map(lambda a: a[0], tree)
    encode = needs_encoder(spec.observation_space)
    enc = encoder_config(cfg) if encode else None
    gru = cfg.gru_size if cfg.recurrent else None
    actor = make_actor(
        one(actor_inputs(obs, cfg, n)),
        param_size,
        cfg.hidden_sizes,
        cfg.activation,
        gaussian=isinstance(spec.action_space, spaces.Box),
        input_space=actor_input_space(spec, cfg) if encode else None,
        encoder=enc,
        gru_size=gru,
    )
    critic = make_critic(
        one(critic_inputs(obs, state, cfg, n)),
        cfg.hidden_sizes,
        cfg.activation,
        input_space=critic_input_space(spec, cfg) if encode else None,
        encoder=enc,
        gru_size=gru,
    )
    return actor, critic


def _feed_forward_only(*_: object) -> Array:
    raise TypeError("a recurrent actor-critic has no stateless policy/value: use *_step")


def make_actor_critic(spec: EnvSpec, mapping: PolicyMapping, cfg: PPOConfig) -> ActorCritic:
    """Builds the actor-critic for ``spec`` with parameters shared according to ``mapping``."""
    n = spec.num_agents
    dist = make_action_distribution(spec.action_space)
    actor, critic = _networks(spec, cfg, dist.param_size)
    actor_n, critic_n = share(actor, mapping), share(critic, mapping)
    if cfg.critic_mixing != "none":
        critic_n = _mixed_critic(spec, cfg, mapping)

    def init(key: PRNGKey) -> ActorCriticParams:
        ka, kc = jax.random.split(key)
        return ActorCriticParams(actor_n.init(ka), critic_n.init(kc))

    if cfg.recurrent:

        def policy_step(
            params: tuple[Params, ...], h: Array, obs: PyTree, reset: Array
        ) -> tuple[Array, Array]:
            out: tuple[Array, Array] = actor_n.apply(params, h, actor_inputs(obs, cfg, n), reset)
            return out

        def value_step(
            params: tuple[Params, ...], h: Array, obs: PyTree, state: Array, reset: Array
        ) -> tuple[Array, Array]:
            x = critic_inputs(obs, state, cfg, n)
            out: tuple[Array, Array] = critic_n.apply(params, h, x, reset)
            return out

        ff = _feed_forward_only
        return ActorCritic(init, ff, ff, dist, policy_step, value_step, cfg.gru_size)

    def policy(params: tuple[Params, ...], obs: PyTree, batch_dims: int = 0) -> Array:
        x = actor_inputs(obs, cfg, n, batch_dims)
        out: Array = actor_n.apply(params, x, batch_dims=batch_dims)
        return out

    def value(params: tuple[Params, ...], obs: PyTree, state: Array, batch_dims: int = 0) -> Array:
        x = critic_inputs(obs, state, cfg, n, batch_dims)
        out: Array = critic_n.apply(params, x, batch_dims=batch_dims)
        return out

    return ActorCritic(
        init,
        policy,
        value,
        dist,
        lambda p, h, obs, reset: (h, policy(p, obs)),
        lambda p, h, obs, state, reset: (h, value(p, obs, state)),
    )


class PPOCarry(NamedTuple):
    """The recurrent state of a recurrent actor-critic: ``f32[..., N, H]`` each."""

    actor: Array
    critic: Array


def unroll(
    ac: ActorCritic,
    params: ActorCriticParams,
    h0: PPOCarry,
    tr_obs: PyTree,
    state: Array,
    reset: Array,
) -> tuple[Array, Array]:
    """Replays sequences through a recurrent actor-critic.

    :param h0: the carry before the first step, ``[B, N, H]`` each.
    :param tr_obs: observations ``[T, B, N, ...]``; ``state`` ``[T, B, S]``; ``reset``
        ``bool[T, B, N]`` (the step starts an episode: the carry restarts from zeros).
    :returns: distribution parameters ``[T, B, N, P]`` and values ``[T, B, N]``.
    """
    policy = jax.vmap(ac.policy_step, in_axes=(None, 0, 0, 0))
    value = jax.vmap(ac.value_step, in_axes=(None, 0, 0, 0, 0))

    def step(h: PPOCarry, x: tuple[PyTree, Array, Array]) -> tuple[PPOCarry, tuple[Array, Array]]:
        obs, s, r = x
        h_actor, dist_params = policy(params.actor, h.actor, obs, r)
        h_critic, values = value(params.critic, h.critic, obs, s, r)
        return PPOCarry(h_actor, h_critic), (dist_params, values)

    _, (dist_params, values) = jax.lax.scan(step, h0, (tr_obs, state, reset))
    return dist_params, values
