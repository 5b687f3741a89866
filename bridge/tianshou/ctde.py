"""Centralized training, decentralized execution for Tianshou: :class:`CTDEPolicy`.

A PPO (Tianshou's own :class:`~tianshou.algorithm.PPO`: its clipped loss, GAE, minibatches
and optimizer) whose actor acts on the agent's own observation and whose critic, in training
only, reads the global info that
:class:`~bridge.tianshou.manager.FlexibleMultiAgentPolicyManager` puts on each transition (the
env's state, else every agent's observation of the same step; see
:mod:`bridge.tianshou.global_info`). Acting never needs the critic, so a trained actor runs on
local observations alone.

How the critic gets its input: before an update, :class:`CTDEPolicy` pairs each transition's
observation with the critic's input, ``Batch(ctde_own=obs, ctde_critic=float32[B, G])`` (the
same for ``obs_next``); the actor and the critic are wrapped so that each reads its own part of
the pair, and every other input (the Collector's observations) reaches the actor unchanged.
PPO's own code then runs as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from tianshou.algorithm import PPO
from tianshou.algorithm.modelfree.reinforce import (
    ProbabilisticActorPolicy,
    dist_fn_categorical_from_logits,
)
from tianshou.algorithm.optim import OptimizerFactory
from tianshou.data import Batch, ReplayBuffer
from torch import nn

from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.pettingzoo.layout import flatten_rows
from bridge.tianshou.global_info import global_info_width, local_width

__all__ = ["CTDEPolicy"]

_OWN, _CRITIC = "ctde_own", "ctde_critic"


class _Part(nn.Module):
    """``net`` on one part of an observation that :class:`CTDEPolicy` paired for training
    (``Batch(ctde_own=..., ctde_critic=...)``); any other observation is passed on unchanged."""

    def __init__(self, net: nn.Module, part: str) -> None:
        super().__init__()
        self.net, self.part = net, part

    def forward(self, obs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obs, Batch) and _CRITIC in obs.get_keys():
            obs = obs[self.part]
        return self.net(obs, *args, **kwargs)


def _gaussian(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> torch.distributions.Distribution:
    return torch.distributions.Independent(torch.distributions.Normal(*loc_scale), 1)


def _actor_policy(
    actor: nn.Module | ProbabilisticActorPolicy,
    action_space: spaces.Space | None,
    dist_fn: Callable | None,
    deterministic_eval: bool,
) -> ProbabilisticActorPolicy:
    """``actor`` itself if it is a policy; else a policy around the network."""
    if isinstance(actor, ProbabilisticActorPolicy):
        return actor
    if isinstance(action_space, spaces.Discrete):
        return ProbabilisticActorPolicy(
            actor=actor,
            dist_fn=dist_fn or dist_fn_categorical_from_logits,
            deterministic_eval=deterministic_eval,
            action_space=action_space,
            action_scaling=False,
            action_bound_method=None,
        )
    if isinstance(action_space, spaces.Box):
        return ProbabilisticActorPolicy(
            actor=actor,
            dist_fn=dist_fn or _gaussian,
            deterministic_eval=deterministic_eval,
            action_space=action_space,
        )
    raise ValueError(
        "CTDEPolicy builds its policy for a Discrete or Box action_space when actor is a "
        f"network, got action_space={action_space}"
    )


def _critic_width(critic: nn.Module, given: int | None) -> int:
    """``given``, else the input width of the critic's first ``nn.Linear``."""
    if given is not None:
        return int(given)
    for module in critic.modules():
        lazy = isinstance(module, nn.modules.lazy.LazyModuleMixin)
        if isinstance(module, nn.Linear) and not lazy:
            return int(module.in_features)
    raise ValueError(
        f"cannot tell the input width of the critic {type(critic).__name__} (it has no "
        "nn.Linear): pass critic_input_dim"
    )


class CTDEPolicy(PPO):
    """PPO with a decentralized actor and a centralized critic (MAPPO-style) for Tianshou.

    The actor maps the agent's own observation to its action distribution, in acting and in
    training; the critic maps, in training only, the transition's global info to a value:
    under :class:`~bridge.tianshou.manager.FlexibleMultiAgentPolicyManager` (any mapping mode,
    parallel or AEC env), the env's state where
    :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv` provides one, otherwise all agents'
    observations of the same step concatenated in agent order. One ``CTDEPolicy`` shared by
    several agents (modes ``shared``, ``grouped``, ``custom``) has one actor and one critic for
    them, updated once per update step on all of their transitions.

    Shapes (``B`` transitions, ``N`` agents, ``D`` the flat length of one agent's observation
    in the env's padded layout):

    * actor: ``obs`` (the agent's own observation, as the manager gives it: ``[B, *obs]``) ->
      action distribution input (``logits[B, A]`` for ``Discrete(A)``, ``(loc, scale)`` for
      ``Box``), Tianshou's actor convention ``actor(obs, state=None, info=None) -> (out, h)``;
    * critic: ``float32[B, critic_input_dim]`` (a tensor on the critic's device) -> ``[B, 1]``
      or ``[B]`` values. ``critic_input_dim`` is ``G``: the env's state, flattened
      (``env.state_space``; 54 on mpe2 ``simple_spread`` with 3 agents), or ``N * D``; with
      ``enable_global_info=False`` the agent's own observation, flattened.

    The width is checked when the manager is built (for an env it would train on) and on every
    update: a critic built for another width raises ``ValueError`` naming both widths.

    :param actor: the actor network (then ``action_space`` is needed), or a Tianshou
        ``ProbabilisticActorPolicy`` holding it (used as it is). Its network is wrapped in place
        so that it reads the agent's own part of the paired training observation.
    :param critic: the critic network, ``float32[B, G] -> [B, 1]``.
    :param optim: the optimizer factory for the actor's and the critic's parameters (e.g.
        ``AdamOptimizerFactory(lr=3e-4)``).
    :param enable_global_info: the critic reads the global info (centralized critic,
        MAPPO-style: lower-variance advantages where the outcome depends on the other agents);
        ``False``: the agent's own observation, flattened (independent PPO with a flattening
        critic, for envs without useful global information or as an ablation).
    :param action_space: the agent's own action space (``Discrete`` or ``Box``) when ``actor``
        is a network.
    :param critic_input_dim: the critic's input width ``G``; by default the ``in_features`` of
        the first ``nn.Linear`` among ``critic.modules()`` (the input layer of Tianshou's
        ``Net``, ``DiscreteCritic`` and ``ContinuousCritic``). Pass it for critics whose first
        layer is not a ``Linear`` (or is lazy).
    :param dist_fn: when ``actor`` is a network: its output -> a torch distribution. Default:
        a ``Categorical`` over logits for ``Discrete`` (build Tianshou's ``DiscreteActor`` with
        ``softmax_output=False``), an independent ``Normal`` over ``(loc, scale)`` for ``Box``.
    :param deterministic_eval: when ``actor`` is a network: act with the distribution's mode
        outside of training steps (evaluation); sampling otherwise.
    :param ppo_kwargs: Tianshou ``PPO``'s settings (``eps_clip``, ``dual_clip``,
        ``value_clip``, ``advantage_normalization``, ``recompute_advantage``, ``vf_coef``,
        ``ent_coef``, ``max_grad_norm``, ``gae_lambda``, ``max_batchsize``, ``gamma``,
        ``return_scaling``), with PPO's defaults and meanings.
    :raises ValueError: the critic's input width cannot be told, or an action space other than
        ``Discrete``/``Box`` for an actor network.
    :raises TypeError: ``actor`` is a network and ``action_space`` is missing.
    """

    def __init__(
        self,
        actor: nn.Module | ProbabilisticActorPolicy,
        critic: nn.Module,
        optim: OptimizerFactory,
        enable_global_info: bool = True,
        *,
        action_space: spaces.Space | None = None,
        critic_input_dim: int | None = None,
        dist_fn: Callable | None = None,
        deterministic_eval: bool = False,
        **ppo_kwargs: Any,
    ) -> None:
        if action_space is None and not isinstance(actor, ProbabilisticActorPolicy):
            raise TypeError("CTDEPolicy needs action_space= when actor is a network")
        policy = _actor_policy(actor, action_space, dist_fn, deterministic_eval)
        if not isinstance(policy.actor, _Part):
            policy.actor = _Part(policy.actor, _OWN)
        self.critic_input_dim = _critic_width(critic, critic_input_dim)
        super().__init__(policy=policy, critic=_Part(critic, _CRITIC), optim=optim, **ppo_kwargs)
        self.enable_global_info = bool(enable_global_info)

    def check_env(self, env: EnhancedPettingZooEnv, agent: Any) -> None:
        """Raises ``ValueError`` if the critic's input width differs from what ``env`` gives
        it for ``agent`` (called by the manager when it is built).

        :param env: the manager's env.
        :param agent: one of the agents this algorithm serves.
        """
        width, what = global_info_width(env) if self.enable_global_info else local_width(env, agent)
        self._check_width(width, what)

    def _check_width(self, width: int, what: str) -> None:
        if width != self.critic_input_dim:
            raise ValueError(
                f"CTDEPolicy: the critic takes inputs of width {self.critic_input_dim} "
                f"(critic_input_dim), but {what} has width {width}: build the critic for "
                f"{width} inputs"
            )

    def critic_input(self, batch: Batch, next_obs: bool = False) -> torch.Tensor:
        """The critic's input for a batch of transitions: ``float32[B, critic_input_dim]``.

        :param batch: transitions as the manager gives them (``info.global_obs`` and
            ``info.global_obs_next`` hold the global info).
        :param next_obs: for the next observations (``obs_next``) instead.
        :raises RuntimeError: global info is enabled but the batch has none (it was not
            collected under the manager).
        :raises ValueError: the input's width is not ``critic_input_dim``.
        """
        if self.enable_global_info:
            key = "global_obs_next" if next_obs else "global_obs"
            info = batch.info
            if not isinstance(info, Batch) or key not in info.get_keys():
                raise RuntimeError(
                    f"CTDEPolicy(enable_global_info=True) found no info.{key} in its batch: "
                    "train it under bridge.FlexibleMultiAgentPolicyManager (which adds the "
                    "global info), or pass enable_global_info=False"
                )
            values, what = np.asarray(info[key], np.float32), "the global info of the batch"
        else:
            obs = batch.obs_next if next_obs else batch.obs
            if isinstance(obs, Batch) and {"obs", "mask"} <= set(obs.get_keys()):
                obs = obs.obs  # the manager's Batch(obs, mask, agent_id) of masked envs
            values, what = flatten_rows(obs, len(batch)), "the agent's own observation"
        self._check_width(values.shape[1], what)
        device = next(self.critic.parameters()).device
        return torch.as_tensor(values, device=device)

    def _preprocess_batch(self, batch: Any, buffer: ReplayBuffer, indices: np.ndarray) -> Any:
        now, after = self.critic_input(batch), self.critic_input(batch, next_obs=True)
        batch.obs = Batch({_OWN: batch.obs, _CRITIC: now})
        batch.obs_next = Batch({_OWN: batch.obs_next, _CRITIC: after})
        return super()._preprocess_batch(batch, buffer, indices)
