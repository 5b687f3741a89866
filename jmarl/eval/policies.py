"""Policies in the form :func:`jmarl.nash_conv` takes: ``policy(obs [B, ...], action_mask
bool[B, A]) -> probs [B, A]``, one agent's action distribution.

* fixed: :func:`uniform_policy`, :func:`first_action_policy` (OpenSpiel's reference policies);
* tabular: :func:`information_states` lists a game's information states (one row per
  observation at which an agent acts), :func:`tabular_policy` plays a table of probabilities
  over them (host-side lookup, for CFR-style code and tests);
* from a jmarl :class:`~jmarl.algos.base.Trainer` and its ``acting_params``:
  :func:`actor_critic_policy` (the exact action probabilities of ``ippo`` / ``mappo``) and
  :func:`greedy_policy` (``act``'s deterministic action, any feed-forward algorithm). Both
  return one policy per agent (each agent's own parameters under any sharing).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.algos.acting import observed_timestep
from jmarl.algos.base import Trainer
from jmarl.env.base import Env, EnvSpec
from jmarl.eval.game_tree import build_game_tree
from jmarl.eval.nash_conv import Policy
from jmarl.nn.distributions import masked_logits
from jmarl.types import Array, Params, PyTree


def uniform_policy(obs: PyTree, action_mask: Array) -> Array:
    """Uniform over the legal actions."""
    del obs
    mask = jnp.asarray(action_mask, jnp.float32)
    return mask / jnp.sum(mask, axis=-1, keepdims=True)


def first_action_policy(obs: PyTree, action_mask: Array) -> Array:
    """Always the first legal action (OpenSpiel's ``FirstActionPolicy``)."""
    del obs
    mask = jnp.asarray(action_mask, bool)
    return jax.nn.one_hot(jnp.argmax(mask, axis=-1), mask.shape[-1])


class InfoStates(NamedTuple):
    """A game's information states: ``obs`` ``[K, ...]`` (distinct), ``action_mask``
    ``bool[K, A]`` and the ``agent`` ``int[K]`` that acts there, agent 0's first."""

    obs: PyTree
    action_mask: np.ndarray
    agent: np.ndarray


def information_states(env: Env) -> InfoStates:
    """Every observation at which an agent acts in ``env``'s game tree, once each (in the
    order first met, breadth first)."""
    tree = build_game_tree(env)
    obs, masks, agents = [], [], []
    for i in range(2):
        for level in tree.levels:
            rows = np.nonzero(level.alive[:, i])[0]
            obs.append(jax.tree.map(lambda x, r=rows, a=i: np.asarray(x)[r, a], level.obs))
            masks.append(level.mask[rows, i])
            agents.append(np.full(len(rows), i))
    stacked = jax.tree.map(lambda *xs: np.concatenate(xs), *obs)
    _, first = np.unique(_keys(stacked), return_index=True)
    keep = np.sort(first)
    return InfoStates(
        jax.tree.map(lambda x: x[keep], stacked),
        np.concatenate(masks)[keep],
        np.concatenate(agents)[keep],
    )


def _keys(obs: PyTree) -> np.ndarray:
    """One bytes key per row of ``obs [M, ...]`` (its leaves as float64)."""
    leaves = [np.asarray(x, np.float64).reshape(len(x), -1) for x in jax.tree.leaves(obs)]
    flat = np.ascontiguousarray(np.concatenate(leaves, axis=1))
    return np.array([row.tobytes() for row in flat], dtype=object)


def tabular_policy(obs: PyTree, probs: Any) -> Policy:
    """A policy that plays ``probs[k]`` at observation ``obs[k]`` (host-side lookup).

    :param obs: ``[K, ...]`` distinct observations (e.g. :func:`information_states`).
    :param probs: ``[K, A]`` action probabilities.
    :raises ValueError: at query time, for an observation that is not in the table.
    """
    table = np.asarray(probs, np.float64)
    index = {key: k for k, key in enumerate(_keys(obs))}
    if len(index) != len(table):
        raise ValueError(f"{len(table)} rows of probabilities for {len(index)} observations")

    def policy(query: PyTree, action_mask: Array) -> np.ndarray:
        del action_mask
        try:
            return table[[index[key] for key in _keys(jax.device_get(query))]]
        except KeyError:
            raise ValueError("tabular_policy: an observation is not in the table") from None

    return policy


def _all_seats(obs: PyTree, n: int) -> PyTree:
    """``obs [B, ...]`` copied to every agent's row ``[B, N, ...]``."""
    return jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x)[:, None], n, axis=1), obs)


def actor_critic_policy(trainer: Trainer, params: Params, spec: EnvSpec) -> tuple[Policy, ...]:
    """Each agent's exact action probabilities under an ``ippo`` / ``mappo`` trainer's actor.

    :param params: ``trainer.acting_params(learner)`` (an ``ActorCriticParams``).
    :raises ValueError: not a feed-forward PPO trainer.
    """
    from jmarl.algos.ppo.config import PPOConfig
    from jmarl.algos.ppo.networks import make_actor_critic

    if not isinstance(trainer.config, PPOConfig) or trainer.config.recurrent:
        raise ValueError("actor_critic_policy needs a feed-forward ippo/mappo trainer")
    ac = make_actor_critic(spec, trainer.mapping, trainer.config)
    n = spec.num_agents
    logits_of = jax.jit(lambda o: ac.policy(params.actor, _all_seats(o, n), batch_dims=1))

    def for_agent(i: int) -> Policy:
        def policy(obs: PyTree, action_mask: Array) -> Array:
            logits = logits_of(obs)[:, i]
            return jax.nn.softmax(masked_logits(logits, jnp.asarray(action_mask)), axis=-1)

        return policy

    return tuple(for_agent(i) for i in range(n))


def greedy_policy(trainer: Trainer, params: Params, spec: EnvSpec) -> tuple[Policy, ...]:
    """Each agent's deterministic action under ``trainer.act`` (one-hot), for any algorithm.

    Exact for greedy policies (Q-learning) and for the mode of a stochastic one. Each query
    starts from ``trainer.init_carry``: use feed-forward policies only.
    """
    n = spec.num_agents

    @jax.jit
    def actions(obs: PyTree, action_mask: Array) -> Array:
        b = action_mask.shape[0]
        ts = observed_timestep(
            _all_seats(obs, n),
            jnp.zeros((b, *spec.state_space.shape), spec.state_space.dtype),
            jnp.ones((b, n), bool),
            jnp.repeat(jnp.asarray(action_mask, bool)[:, None], n, axis=1),
        )
        out = trainer.act(params, ts, jax.random.key(0), trainer.init_carry(b), True)
        return jnp.asarray(out.action)

    def for_agent(i: int) -> Policy:
        def policy(obs: PyTree, action_mask: Array) -> Array:
            return jax.nn.one_hot(actions(obs, action_mask)[:, i], action_mask.shape[-1])

        return policy

    return tuple(for_agent(i) for i in range(n))
