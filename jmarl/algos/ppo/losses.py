"""The multi-agent PPO loss on a minibatch ``[B, N, ...]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmarl.algos.auxiliary import AuxiliaryLoss, auxiliary_loss
from jmarl.algos.base import Transition
from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams, unroll
from jmarl.ops.losses import masked_mean, normalize_advantages, ppo_policy_loss, ppo_value_loss
from jmarl.types import Array


class PPOBatch(NamedTuple):
    """A minibatch: the transitions ``[B, N, ...]`` plus GAE outputs ``f32[B, N]``
    (recurrent: whole sequences, ``[T, B, N, ...]`` and ``f32[T, B, N]``)."""

    transition: Transition
    advantages: Array
    targets: Array


def ppo_loss(
    params: ActorCriticParams,
    batch: PPOBatch,
    ac: ActorCritic,
    cfg: PPOConfig,
    auxiliaries: Sequence[AuxiliaryLoss] = (),
) -> tuple[Array, dict[str, Array]]:
    """Clipped PPO loss = policy + ``vf_coef`` * value - ``ent_coef`` * entropy, plus the
    weighted ``auxiliaries`` terms (their metrics prefixed by their names).

    Only rows with ``alive`` (the agent acted) count; every mean is over alive rows of all
    agents, so a shared policy's gradient is the mean of its agents' gradients.
    """
    tr = batch.transition
    mask = tr.alive.astype(jnp.float32)
    if ac.gru_size is None:
        dist_params = ac.policy(params.actor, tr.obs, batch_dims=1)
        values = ac.value(params.critic, tr.obs, tr.state, batch_dims=1)
    else:
        h0 = jax.tree.map(lambda h: h[0], tr.extras["carry"])
        dist_params, values = unroll(ac, params, h0, tr.obs, tr.state, tr.extras["reset"])
    log_prob = ac.distribution.log_prob(dist_params, tr.action, tr.action_mask)
    entropy = masked_mean(ac.distribution.entropy(dist_params, tr.action_mask), mask)
    adv = batch.advantages
    if cfg.normalize_advantages:
        adv = normalize_advantages(adv, mask)
    pi_loss, pi_metrics = ppo_policy_loss(log_prob, tr.extras["log_prob"], adv, cfg.clip_eps, mask)
    v_clip = cfg.clip_eps if cfg.clip_value else None
    v_loss = ppo_value_loss(values, tr.extras["value"], batch.targets, v_clip, mask)
    total = pi_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
    aux_metrics: dict[str, Array] = {}
    if auxiliaries:
        aux_total, aux_metrics = auxiliary_loss(auxiliaries, params, tr)
        total = total + aux_total
    metrics = {
        "loss": total,
        "policy_loss": pi_loss,
        "value_loss": v_loss,
        "entropy": entropy,
        **pi_metrics,
        **aux_metrics,
    }
    return total, metrics
