"""Exact NashConv of a policy in a small two-player game, by best response over the game tree.

``NashConv(pi) = sum_i [ max_{pi_i'} u_i(pi_i', pi_-i) - u_i(pi) ]``: how much each player
could gain by deviating alone, summed; 0 exactly at a Nash equilibrium. It equals OpenSpiel's
``exploitability.nash_conv`` (in two-player zero-sum games, twice the exploitability).

The policy is queried on every decision node at once (one batched call per agent) and the
values are computed on the host in float64: the tree of :func:`jmarl.eval.game_tree.
build_game_tree`, backwards by depth. The best response of agent ``i`` picks, at each of its
information states, the action with the best value summed over the nodes of that information
state, weighted by the probability that chance and the other agent lead there. An
information state is an observation: distinct observations are distinct information states
(the games' observations are full information states, tested), and every node of one must lie
at one depth.

**The policy argument.** ``policy(obs, action_mask) -> probs``: one agent's action
distribution for a batch of its observations ``[B, ...]`` (any pytree, as the env gives them)
and legal actions ``bool[B, A]``, as ``[B, A]`` probabilities (numpy or JAX; illegal actions'
entries are ignored and each row is renormalised over the legal ones). One callable serves
every seat (the observations say which seat); a sequence of callables gives agent ``i``'s as
entry ``i`` (independent policies); a :class:`Mixture` of such policies is a population's
mixed strategy (e.g. a self-play pool). Builders: :mod:`jmarl.eval.policies`.

>>> import jmarl
>>> from jmarl.eval.policies import first_action_policy, uniform_policy
>>> rps = jmarl.make("rock_paper_scissors")
>>> jmarl.nash_conv(rps, uniform_policy), jmarl.nash_conv(rps, first_action_policy)
(0.0, 2.0)
>>> round(jmarl.nash_conv(jmarl.make("kuhn_poker"), uniform_policy), 6)  # 11/12
0.916667
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from jmarl.env.base import Env
from jmarl.eval.game_tree import GameTree, build_game_tree
from jmarl.types import PyTree

Policy = Callable[[PyTree, Any], Any]
"""``policy(obs [B, ...], action_mask bool[B, A]) -> probs [B, A]`` (see the module doc)."""


class PolicyValues(NamedTuple):
    """``on_policy`` ``f64[N]`` each agent's expected return when all follow the policy;
    ``best_response`` ``f64[N]`` its expected return when it best-responds to the others."""

    on_policy: np.ndarray
    best_response: np.ndarray

    @property
    def nash_conv(self) -> float:
        return float(np.sum(self.best_response - self.on_policy))


def _flat(obs: PyTree) -> np.ndarray:
    """``[M, D]`` float64: every leaf of ``obs [M, ...]`` flattened and concatenated."""
    leaves = [np.asarray(x, np.float64).reshape(len(x), -1) for x in jax.tree.leaves(obs)]
    return np.concatenate(leaves, axis=1)


def _rows(obs: PyTree, rows: np.ndarray, agent: int) -> PyTree:
    return jax.tree.map(lambda x: np.asarray(x)[rows, agent], obs)


def _query(policy: Policy, obs: PyTree, mask: np.ndarray) -> np.ndarray:
    """``f64[M, A]`` probabilities of one agent's policy, renormalised over legal actions."""
    probs = np.asarray(jax.device_get(policy(obs, mask)), np.float64)
    if probs.shape != mask.shape:
        raise ValueError(f"policy returned shape {probs.shape}, expected {mask.shape}")
    probs = np.where(mask, probs, 0.0)
    total = probs.sum(-1, keepdims=True)
    if np.any(~np.isfinite(probs)) or np.any(probs < 0) or np.any(total <= 0):
        raise ValueError("policy probabilities must be finite, >= 0 and not all 0 on legal actions")
    return probs / total


class TreePolicy(NamedTuple):
    """Per level: ``probs`` ``f64[n, 2, A]`` (agents that do not act: all on action 0) and
    ``infoset`` ``int[n, 2]`` information-state ids (``-1`` where the agent does not act)."""

    probs: tuple[np.ndarray, ...]
    infoset: tuple[np.ndarray, ...]


def tree_policy(tree: GameTree, policies: Sequence[Policy]) -> TreePolicy:
    """Queries each agent's policy once, on all nodes where it acts."""
    a = tree.levels[0].mask.shape[-1]
    probs = [np.zeros((len(lv.terminal), 2, a)) for lv in tree.levels]
    infoset = [np.full((len(lv.terminal), 2), -1) for lv in tree.levels]
    for p in probs:
        p[:, :, 0] = 1.0
    for i in range(2):
        where = [np.nonzero(lv.alive[:, i])[0] for lv in tree.levels]
        if not sum(len(w) for w in where):
            continue
        obs = [_rows(lv.obs, w, i) for lv, w in zip(tree.levels, where, strict=True)]
        obs_all = jax.tree.map(lambda *xs: np.concatenate(xs), *obs)
        mask = np.concatenate([lv.mask[w, i] for lv, w in zip(tree.levels, where, strict=True)])
        got = _query(policies[i], obs_all, mask)
        _, ids = np.unique(_flat(obs_all), axis=0, return_inverse=True)
        ids = ids.reshape(-1)
        _check_one_depth(ids, np.repeat(np.arange(len(where)), [len(w) for w in where]))
        start = 0
        for d, w in enumerate(where):
            probs[d][w, i] = got[start : start + len(w)]
            infoset[d][w, i] = ids[start : start + len(w)]
            start += len(w)
    return TreePolicy(tuple(probs), tuple(infoset))


def _check_one_depth(ids: np.ndarray, depth: np.ndarray) -> None:
    first = np.full(ids.max() + 1, -1)
    first[ids] = depth
    if np.any(first[ids] != depth):
        raise ValueError(
            "an observation occurs at two depths of the game tree: it cannot be an information "
            "state (observations must hold the full information state)"
        )


def _edge_probs(tree: GameTree, tp: TreePolicy, d: int) -> np.ndarray:
    """``f64[m, 2]``: each agent's probability of its part of the joint action on every edge
    from level ``d`` to ``d + 1``."""
    child = tree.levels[d + 1]
    agents = np.arange(2)[None, :]
    return tp.probs[d][child.parent[:, None], agents, child.action]


def on_policy_values(tree: GameTree, tp: TreePolicy) -> np.ndarray:
    """``f64[2]``: expected returns when both agents follow the policy."""
    value = np.zeros((len(tree.levels[-1].terminal), 2))
    for d in range(len(tree.levels) - 2, -1, -1):
        child = tree.levels[d + 1]
        w = _edge_probs(tree, tp, d).prod(-1)
        above = np.zeros((len(tree.levels[d].terminal), 2))
        np.add.at(above, child.parent, w[:, None] * (child.reward + value))
        value = above
    return tree.chance @ value


def _reach_of_others(tree: GameTree, tp: TreePolicy, i: int) -> list[np.ndarray]:
    """Per level ``f64[n]``: probability that chance and agent ``1 - i`` lead to each node."""
    reach = [tree.chance.copy()]
    for d in range(len(tree.levels) - 1):
        child = tree.levels[d + 1]
        reach.append(reach[d][child.parent] * _edge_probs(tree, tp, d)[:, 1 - i])
    return reach


def best_response_value(tree: GameTree, tp: TreePolicy, i: int) -> float:
    """Agent ``i``'s expected return when it best-responds to the other's policy."""
    reach = _reach_of_others(tree, tp, i)
    a = tree.levels[0].mask.shape[-1]
    value = np.zeros(len(tree.levels[-1].terminal))
    for d in range(len(tree.levels) - 2, -1, -1):
        level, child = tree.levels[d], tree.levels[d + 1]
        w = _edge_probs(tree, tp, d)[:, 1 - i]
        q = np.zeros((len(level.terminal), a))
        np.add.at(q, (child.parent, child.action[:, i]), w * (child.reward[:, i] + value))
        value = q[:, 0].copy()  # agent i does not act: its only action is 0
        acts = np.nonzero(level.alive[:, i])[0]
        if len(acts):
            ids = tp.infoset[d][acts, i]
            _, local = np.unique(ids, return_inverse=True)
            total = np.zeros((local.max() + 1, a))
            np.add.at(total, local, reach[d][acts, None] * q[acts])
            legal = np.zeros((local.max() + 1, a), bool)
            legal[local] = level.mask[acts, i]
            best = np.argmax(np.where(legal, total, -np.inf), axis=-1)
            value[acts] = q[acts, best[local]]
    return float(tree.chance @ value)


def _as_policies(policy: Policy | Sequence[Policy]) -> Sequence[Policy]:
    if callable(policy):
        return (policy, policy)
    policies = tuple(policy)
    if len(policies) != 2 or not all(callable(p) for p in policies):
        raise ValueError("policy must be one callable or a sequence of 2 (one per agent)")
    return policies


class Mixture(NamedTuple):
    """A population's mixed strategy: each game, each seat draws member ``k`` with probability
    ``weights[k]`` (normalised) and plays its ``policies[k]`` (one callable, or one per agent)
    throughout. Evaluated exactly: at every node the members' action probabilities are averaged
    with weights ``weights[k]`` times member ``k``'s own probability of having reached the node
    (Kuhn's theorem: the behaviour strategy equivalent to the mixture)."""

    policies: Sequence[Policy | Sequence[Policy]]
    weights: Sequence[float]


AnyPolicy = Policy | Sequence[Policy] | Mixture


def mixture_tree_policy(tree: GameTree, members: Sequence[TreePolicy], weights: Any) -> TreePolicy:
    """The behaviour policy of a :class:`Mixture` of tree policies (see there)."""
    w = np.asarray(weights, np.float64)
    if w.shape != (len(members),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"mixture weights must be [{len(members)}], >= 0, not all 0; got {w}")
    reach = [np.broadcast_to(w[:, None, None], (len(w), len(tree.chance), 2))]
    mixed = []
    for d in range(len(tree.levels)):
        probs = np.stack([m.probs[d] for m in members])  # [K, n, 2, A]
        weight = reach[d][..., None]  # w_k times member k's own reach of the node
        total = weight.sum(0)
        unreached = np.tensordot(w / w.sum(), probs, axes=1)  # any policy will do there
        average = (weight * probs).sum(0) / np.where(total > 0, total, 1.0)
        mixed.append(np.where(total > 0, average, unreached))
        if d + 1 < len(tree.levels):
            child = tree.levels[d + 1]
            taken = probs[:, child.parent[:, None], np.arange(2)[None, :], child.action]
            reach.append(reach[d][:, child.parent] * taken)
    return TreePolicy(tuple(mixed), members[0].infoset)


def make_policy_values(env: Env) -> Callable[[AnyPolicy], PolicyValues]:
    """Enumerates ``env``'s game tree once; returns ``values(policy) -> PolicyValues`` (a
    policy, one per agent, or a :class:`Mixture`).

    :raises ValueError: ``env`` cannot be enumerated (see
        :func:`jmarl.eval.game_tree.build_game_tree`).
    """
    tree = build_game_tree(env)

    def values(policy: AnyPolicy) -> PolicyValues:
        if isinstance(policy, Mixture):
            members = [tree_policy(tree, _as_policies(p)) for p in policy.policies]
            tp = mixture_tree_policy(tree, members, policy.weights)
        else:
            tp = tree_policy(tree, _as_policies(policy))
        br = np.array([best_response_value(tree, tp, i) for i in range(2)])
        return PolicyValues(on_policy_values(tree, tp), br)

    return values


def make_nash_conv(env: Env) -> Callable[[AnyPolicy], float]:
    """Enumerates ``env``'s game tree once; returns ``nash_conv(policy) -> float`` (for
    repeated evaluation, e.g. during training)."""
    values = make_policy_values(env)
    return lambda policy: values(policy).nash_conv


def nash_conv(env: Env, policy: AnyPolicy) -> float:
    """Exact NashConv of ``policy`` in the two-player game ``env`` (see the module doc).

    :param env: a game that ``env.chance_outcomes`` enumerates: matrix games,
        ``kuhn_poker``, ``leduc_holdem``.
    :param policy: one agent's ``policy(obs [B, ...], action_mask bool[B, A]) -> probs
        [B, A]`` for every seat, a sequence with one per agent, or a :class:`Mixture` of
        such policies (a population, e.g. a self-play pool).
    :raises ValueError: ``env`` cannot be enumerated, or bad policy output.
    """
    return make_nash_conv(env)(policy)
