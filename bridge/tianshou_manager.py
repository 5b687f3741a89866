"""Tianshou algorithms for the agents of a PettingZoo env: :class:`FlexibleMultiAgentPolicyManager`.

The manager is itself a Tianshou ``Algorithm``: Tianshou's unmodified ``Collector``,
``OnPolicyTrainer`` and ``OffPolicyTrainer`` drive it over envs wrapped in
:class:`~bridge.pettingzoo_env.EnhancedPettingZooEnv` (AEC or parallel mode). It maps every
agent to a policy id and every policy id to a Tianshou ``Algorithm`` (torch DQN, PPO, SAC, ...,
or a jmarl ``JaxPolicy``-backed one); sub-algorithms are only used through Tianshou's
``Algorithm`` / ``Policy`` interface.

Modes (``policy_map`` is agent id -> policy id):

* ``independent``: one algorithm per agent (a list in ``env.agents`` order, or a dict keyed by
  agent id); policy ids are the agent ids. This is what Tianshou's
  ``MultiAgentOffPolicyAlgorithm`` / ``MultiAgentOnPolicyAlgorithm`` do.
* ``shared``: one algorithm for all agents (policy id ``"shared"``).
* ``grouped``: one algorithm per group of ``agent_groups={"team": [agent ids], ...}`` (a dict
  keyed by group name, or a list in group order); policy ids are the group names.
* ``custom``: ``policy_mapping_fn(agent_id) -> policy id`` and a dict policy id -> algorithm.

An algorithm object that several agents (or policy ids) map to is one *distinct* algorithm.

**Acting.** Per step, each distinct algorithm's policy is called once, on a batch of all of its
agents' rows: in parallel mode the ``[R, N, ...]`` joint observation of ``R`` envs is sliced to
its agents and flattened to ``R * n`` rows (agent-minor), in AEC mode the rows whose acting agent
it serves are selected. The results are scattered back into the joint action. A sub-policy sees
its agents in their own spaces, cut out of the env's padded layout: the observation in the
agent's own shape (or ``Batch(obs=..., mask=..., agent_id=...)`` when the env has action masks,
so Tianshou's DQN and masked random policy work unchanged; the mask covers the agent's own
actions), ``info`` ``Batch(agent_id=...)``, and actions in the agent's own action space. So a
sub-algorithm is built for ``env.agent_observation_spaces[a]`` / ``agent_action_spaces[a]``
(for classic games, the ``"observation"`` part) of the agents it serves. Exploration
noise and action mapping (``map_action`` for action scaling/bounding) are dispatched the same
way, and the "within training step" flag set on the manager's policy is passed on to every
sub-policy (so DQN explores with ``eps_training`` while collecting for training).

**Learning.** ``update`` turns the collector's buffer into per-agent transitions, routes them to
their algorithms, and calls each distinct algorithm's own ``update`` exactly once, on a replay
buffer that holds all of its agents' trajectories (one sub-buffer per env x agent), so n-step
returns, GAE, prioritized replay and LR schedulers of the sub-algorithms work as they do in
single-agent Tianshou.

* Parallel mode: row ``j`` gives every agent alive in it the transition
  ``(obs[j][i], act[j][i], rew[j][i], obs_next[j][i])``; it is terminal or truncated by the
  agent's own flags in ``info``. Agents that are not alive in a row have no transition.
* AEC mode (re-stitching): agent ``i``'s transition from its row ``j`` is completed by its next
  own row ``j'`` of the same episode: reward ``rew[j'][i]`` (everything ``i`` received since its
  action, credited by the env), next observation ``obs[j']`` (its own), terminal if ``j'`` is
  its final row and it terminated, truncated if it was truncated. A transition whose ``j'`` has
  not been collected yet is carried over to the next update (if the next rows continue the
  episode; otherwise, e.g. after a collector reset, it is dropped).

On-policy updates consume the whole buffer (the on-policy trainer clears it after each update);
off-policy updates copy the rows added since the previous update into the manager's own replay
buffers (about the size of the collector's buffer in total; prioritized if it is prioritized),
from which every distinct algorithm samples ``sample_size`` transitions of its agents.

**Joint algorithms.** In parallel mode, an algorithm whose policy's action space is the env's
joint action space (e.g. jmarl's ``JaxPPO`` with a ``JaxPolicy``, which shares parameters across
agents inside one jitted call) acts for all agents at once: it must be the only algorithm, its
policy gets the Collector's batches unchanged, and its ``update`` gets the Collector's buffer.

Not supported: recurrent sub-policies (hidden state), sub-policies' ``policy`` entries in the
buffer, wrapping the manager in a Tianshou wrapper algorithm (ICM), and more rows per env
between two off-policy updates than the collector's buffer holds per env.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces
from tianshou.algorithm.algorithm_base import (
    Algorithm,
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    Policy,
    TrainingStats,
)
from tianshou.data import (
    Batch,
    PrioritizedReplayBuffer,
    PrioritizedVectorReplayBuffer,
    ReplayBuffer,
    ReplayBufferManager,
    VectorReplayBuffer,
    to_numpy,
)
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from bridge.pettingzoo_env import EnhancedPettingZooEnv
from jmarl.agents.sharing import assign_policies

__all__ = [
    "SHARING_MODES",
    "FlexibleMultiAgentOffPolicyManager",
    "FlexibleMultiAgentOnPolicyManager",
    "FlexibleMultiAgentPolicyManager",
    "MultiAgentDispatchPolicy",
    "MultiAgentTrainingStats",
    "build_policy_map",
]

SHARING_MODES: tuple[str, ...] = ("independent", "shared", "grouped", "custom")
_ALGORITHMS_KEY = "algorithms"

# --- configuration ------------------------------------------------------------------------------


def build_policy_map(
    agents: Sequence[Hashable],
    mode: str,
    agent_groups: Mapping[str, Sequence[Hashable]] | None = None,
    policy_mapping_fn: Callable[[Any], str] | None = None,
) -> dict[Any, Any]:
    """Agent id -> policy id for a sharing mode (the rules of ``jmarl.agents.sharing``).

    :param agents: the agent ids, in env order.
    :param mode: one of :data:`SHARING_MODES`.
    :param agent_groups: for ``grouped``: group name -> its agent ids (every agent in one group).
    :param policy_mapping_fn: for ``custom``: agent id -> policy id (a ``str``).
    :raises ValueError: unknown mode, an option that the mode does not use, bad groups, or a
        mapping function that returns something other than ``str``.
    """
    if mode not in SHARING_MODES:
        raise ValueError(f"unknown sharing mode {mode!r}; expected one of {SHARING_MODES}")
    if agent_groups is not None and mode != "grouped":
        raise ValueError(f"agent_groups is only used by mode 'grouped', not {mode!r}")
    if policy_mapping_fn is not None and mode != "custom":
        raise ValueError(f"policy_mapping_fn is only used by mode 'custom', not {mode!r}")
    return dict(zip(agents, assign_policies(agents, mode, agent_groups, policy_mapping_fn)))


def _policies_by_id(
    policies: Any, mode: str, policy_map: dict[Any, Any], agents: list[Any]
) -> dict[Any, Algorithm]:
    """Policy id -> algorithm, from the single algorithm, list or dict the user passed."""
    ids = list(dict.fromkeys(policy_map.values()))
    if isinstance(policies, Algorithm):
        if mode != "shared":
            raise ValueError(
                f"mode {mode!r} needs one algorithm per policy (a list or a dict), got a single "
                "algorithm; pass mode='shared' to use one algorithm for all agents"
            )
        return {"shared": policies}
    if isinstance(policies, Mapping):
        return _from_dict(dict(policies), ids, policy_map)
    if isinstance(policies, Sequence) and not isinstance(policies, str):
        return _from_list(list(policies), mode, ids, agents)
    raise TypeError(
        "policies must be a tianshou Algorithm, a list or a dict of them, got "
        f"{type(policies).__name__}"
    )


def _from_list(policies: list[Any], mode: str, ids: list[Any], agents: list[Any]) -> dict:
    if mode == "custom":
        raise ValueError("mode 'custom' needs a dict policy id -> Algorithm, got a list")
    what = {"independent": "agent", "shared": "shared policy", "grouped": "group"}[mode]
    if len(policies) != len(ids):
        names = agents if mode == "independent" else ids
        raise ValueError(
            f"a list of algorithms needs one per {what}: got {len(policies)} for "
            f"{len(ids)} ({names})"
        )
    return dict(zip(ids, policies))


def _from_dict(policies: dict[Any, Any], ids: list[Any], policy_map: dict[Any, Any]) -> dict:
    if ids == ["shared"] and len(policies) == 1:
        return dict(policies)  # mode 'shared' with one named algorithm: its name is the id
    missing = [p for p in ids if p not in policies]
    if missing:
        users = {p: [a for a, q in policy_map.items() if q == p] for p in missing}
        raise ValueError(
            f"agents are mapped to unknown policies {users} (policy -> agents); "
            f"policies has {list(policies)}"
        )
    unused = [p for p in policies if p not in ids]
    if unused:
        raise ValueError(f"policies {unused} are not used by any agent; policy ids are {ids}")
    return {p: policies[p] for p in ids}


def _check_algorithms(by_id: dict[Any, Any]) -> None:
    for pid, algorithm in by_id.items():
        if not isinstance(algorithm, Algorithm):
            raise TypeError(
                f"policy {pid!r} must be a tianshou Algorithm (e.g. DQN(policy=...)), got "
                f"{type(algorithm).__name__}"
            )
    kinds = {pid: _kind(a) for pid, a in by_id.items()}
    other = [pid for pid, k in kinds.items() if k is None]
    if other:
        raise ValueError(
            f"policies {other} are neither on-policy nor off-policy algorithms; the manager "
            "trains OnPolicyAlgorithm or OffPolicyAlgorithm subclasses"
        )
    if len(set(kinds.values())) > 1:
        raise ValueError(
            "cannot mix on-policy and off-policy algorithms in one manager (they need "
            f"different trainers): {kinds}"
        )


def _kind(algorithm: Algorithm) -> str | None:
    if isinstance(algorithm, OnPolicyAlgorithm):
        return "on-policy"
    if isinstance(algorithm, OffPolicyAlgorithm):
        return "off-policy"
    return None


def _is_joint(algorithm: Algorithm, env: EnhancedPettingZooEnv) -> bool:
    """Whether the algorithm acts for all agents at once (its actions are the env's joint ones,
    as for a jmarl ``JaxPolicy``): parallel mode only."""
    return env.mode == "parallel" and algorithm.policy.action_space == env.action_space


def _check_joint(env: EnhancedPettingZooEnv, by_id: dict[Any, Algorithm]) -> bool:
    """A joint-action algorithm must be the only one; returns whether there is one."""
    joint = [pid for pid, a in by_id.items() if _is_joint(a, env)]
    if joint and len({id(a) for a in by_id.values()}) > 1:
        raise ValueError(
            f"policy {joint[0]!r} acts for all agents at once (its action space is the env's "
            f"joint action space {env.action_space}), so it must be the only algorithm"
        )
    return bool(joint)


def _check_shared_spaces(
    env: EnhancedPettingZooEnv, policy_map: dict[Any, Any], by_id: dict[Any, Algorithm]
) -> None:
    """One algorithm (network) may only serve agents whose own spaces are equal."""
    first: dict[int, tuple[Any, Any]] = {}
    obs_spaces, act_spaces = env.agent_observation_spaces, env.agent_action_spaces
    for agent in env.agents:
        pid = policy_map[agent]
        other, other_pid = first.setdefault(id(by_id[pid]), (agent, pid))
        same = obs_spaces[agent] == obs_spaces[other] and act_spaces[agent] == act_spaces[other]
        if not same:
            raise ValueError(
                f"policy {other_pid!r} is shared by agents {other!r} and {agent!r}, whose "
                f"observation/action spaces differ: {obs_spaces[other]}/{act_spaces[other]} "
                f"vs {obs_spaces[agent]}/{act_spaces[agent]}"
            )


class _Config(NamedTuple):
    """A checked configuration: the maps and the distinct algorithms with their agents."""

    mode: str
    policy_map: dict[Any, Any]
    by_id: dict[Any, Algorithm]
    keys: list[str]  # module key of each distinct algorithm
    distinct: list[Algorithm]
    agents_of: list[np.ndarray]  # agent indices served by each distinct algorithm
    first_id: list[Any]  # first policy id of each distinct algorithm
    joint: bool  # the only algorithm acts on joint observations and actions


def _configure(
    policies: Any,
    env: EnhancedPettingZooEnv,
    mode: str,
    agent_groups: Mapping[str, Sequence[Hashable]] | None,
    policy_mapping_fn: Callable[[Any], str] | None,
) -> _Config:
    """Checks a configuration; raises ``ValueError`` / ``TypeError`` naming what is wrong."""
    policy_map = build_policy_map(env.agents, mode, agent_groups, policy_mapping_fn)
    by_id = _policies_by_id(policies, mode, policy_map, list(env.agents))
    if mode == "shared":
        policy_map = dict.fromkeys(env.agents, next(iter(by_id)))
    _check_algorithms(by_id)
    joint = _check_joint(env, by_id)
    if not joint:
        _check_shared_spaces(env, policy_map, by_id)
    distinct: dict[int, list[Any]] = {}
    for k, agent in enumerate(env.agents):
        pid = policy_map[agent]
        distinct.setdefault(id(by_id[pid]), [pid, []])[1].append(k)
    entries = list(distinct.values())
    return _Config(
        mode=mode,
        policy_map=policy_map,
        by_id=by_id,
        keys=_module_keys([pid for pid, _ in entries]),
        distinct=[by_id[pid] for pid, _ in entries],
        agents_of=[np.asarray(idx, np.int64) for _, idx in entries],
        first_id=[pid for pid, _ in entries],
        joint=joint,
    )


def _module_keys(pids: list[Any]) -> list[str]:
    """``ModuleDict`` keys for policy ids: their own names where torch allows them."""
    keys: list[str] = []
    for n, pid in enumerate(pids):
        name = str(pid)
        bad = name in dir(nn.ModuleDict) or not name or "." in name or name in keys
        keys.append(f"_policy_{n}" if bad else name)
    return keys


# --- layouts ------------------------------------------------------------------------------------


class _Layout:
    """Where agents' entries sit in the env's rows (AEC: one agent a row; parallel: all).

    An entry is addressed by ``(j, i)``: env row ``j`` and agent index ``i`` (in AEC mode the
    row's ``agent_id``).
    """

    def __init__(self, env: EnhancedPettingZooEnv) -> None:
        self.parallel = env.mode == "parallel"
        self.has_mask = env.has_action_mask
        self.num_agents = env.num_agents
        self.next_key = "obs_next" if self.parallel else "obs"  # where an agent's next obs is
        self.act_shape = env.padded_action_space.shape

    def index(self, j: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, ...]:
        """Index of the entries ``(j, i)`` in an array laid out like the env's rows."""
        return (j, i) if self.parallel else (j,)

    def joint_shape(self, count: int) -> tuple[int, ...]:
        """Shape of the joint action for ``count`` env rows."""
        agents = (self.num_agents,) if self.parallel else ()
        return (count, *agents, *self.act_shape)


class _Route:
    """One distinct algorithm: its policy, its agents, and their own spaces' layout.

    Its agents have equal own spaces (checked at configuration), so their entries are cut out of
    the env's padded layout the same way: observations to the agent's own shape, masks and
    actions to the agent's own action space.

    :param policy: the algorithm's policy.
    :param agents: the agent indices it serves.
    :param env: the wrapped env.
    :param layout: the env's row layout.
    """

    def __init__(
        self, policy: Policy, agents: np.ndarray, env: EnhancedPettingZooEnv, layout: _Layout
    ) -> None:
        self.policy, self.agents, self.layout = policy, agents, layout
        agent = env.agents[int(agents[0])]
        entry = env.policy_observation_space(agent)  # what self.obs() returns for the agent
        own_obs = entry["obs"] if layout.has_mask else entry
        self._obs_tree = env.dict_observations  # dicts of arrays, never padded
        self._obs_dim = spaces.flatdim(own_obs)
        self._obs_shape = own_obs.shape
        self._obs_cut = env.padded_observation_space.shape != self._obs_shape
        own = env.agent_action_spaces[agent]
        self._act_n = int(own.n) if isinstance(own, spaces.Discrete) else None
        self._act_shape = own.shape
        self._act_dim = int(np.prod(own.shape))
        self._act_cut = isinstance(own, spaces.Box) and layout.act_shape != own.shape

    def obs(self, obs: Batch, j: np.ndarray, i: np.ndarray) -> Any:
        """The agents' own observations; ``Batch(obs, mask, agent_id)`` if the env has masks."""
        idx = self.layout.index(j, i)
        own = obs.obs[idx] if self._obs_tree else np.asarray(obs.obs[idx])
        if self._obs_cut:
            own = own[:, : self._obs_dim].reshape(len(own), *self._obs_shape)
        if not self.layout.has_mask:
            return own
        mask = np.asarray(obs.mask[idx])[:, : self._act_n]
        return Batch(obs=own, mask=mask, agent_id=np.asarray(i, np.int64))

    def batch(self, obs: Batch, j: np.ndarray, i: np.ndarray) -> Batch:
        """What the policy's ``forward`` receives for the entries ``(j, i)``."""
        return Batch(obs=self.obs(obs, j, i), info=Batch(agent_id=np.asarray(i, np.int64)))

    def own_act(self, act: np.ndarray) -> np.ndarray:
        """Actions in the env's padded layout -> in the agents' own action space."""
        if not self._act_cut:
            return act
        return act[:, : self._act_dim].reshape(len(act), *self._act_shape)

    def padded_act(self, act: np.ndarray) -> np.ndarray:
        """Actions in the agents' own action space -> in the env's padded layout."""
        if not self._act_cut:
            return act
        out = np.zeros((len(act), *self.layout.act_shape), act.dtype)
        out[:, : self._act_dim] = act.reshape(len(act), -1)
        return out

    def transitions(self, parts: list[_Stitched]) -> tuple[Batch, np.ndarray, np.ndarray] | None:
        """This route's transitions of ``parts``: ``(data, stream, agent)``, or None if none."""
        data, stream, agent = [], [], []
        for part in parts:
            keep = np.isin(part.agent, self.agents)
            if keep.any():
                data.append(self._data(part, keep))
                stream.append(np.full(int(keep.sum()), part.stream))
                agent.append(part.agent[keep])
        if not data:
            return None
        joined = data[0] if len(data) == 1 else Batch.cat(data)
        return joined, np.concatenate(stream), np.concatenate(agent)

    def _data(self, part: _Stitched, keep: np.ndarray) -> Batch:
        j, jn, i, rows = part.j[keep], part.jn[keep], part.agent[keep], part.rows
        return Batch(
            obs=self.obs(rows.obs, j, i),
            act=self.own_act(np.asarray(rows.act)[self.layout.index(j, i)]),
            rew=np.asarray(rows.rew, np.float64)[jn, i],
            terminated=part.terminated[keep],
            truncated=part.truncated[keep],
            obs_next=self.obs(rows[self.layout.next_key], jn, i),
            info=Batch(agent_id=i),
        )


def _parallel_entries(count: int, routes: list[_Route]) -> list:
    """``(route index, j, i)`` of every route for ``count`` parallel-mode rows (agent-minor)."""
    rows = np.arange(count)
    return [
        (k, np.repeat(rows, len(r.agents)), np.tile(r.agents, count)) for k, r in enumerate(routes)
    ]


def _entries(obs: Batch, layout: _Layout, owner: np.ndarray, routes: list[_Route]) -> list:
    """``(route index, j, i)`` for every route with entries in a batch of env observations."""
    if layout.parallel:
        return _parallel_entries(len(obs.obs), routes)
    agent = np.asarray(obs.agent_id).reshape(-1)
    if agent.dtype.kind not in "iu":
        raise TypeError(
            f"AEC observations need integer agent ids, got {agent.dtype} ones: collect with "
            "bridge.EnhancedPettingZooEnv (tianshou's PettingZooEnv sends agent names)"
        )
    route = owner[agent]
    out = []
    for k in np.unique(route):
        j = np.flatnonzero(route == k)
        out.append((int(k), j, agent[j]))
    return out


# --- the policy ---------------------------------------------------------------------------------


def _mapping_signature(policy: Policy) -> tuple:
    space = policy.action_space
    bounds = (space.low.tobytes(), space.high.tobytes()) if isinstance(space, spaces.Box) else ()
    return (policy.action_scaling, policy.action_bound_method, bounds)


class MultiAgentDispatchPolicy(Policy):
    """The manager's policy: one call of every sub-policy per step, on all of its agents' rows.

    Acts in the layout of the env it was built for (see the module docstring). ``policies``
    maps agent id -> its sub-policy (as in Tianshou's ``MultiAgentPolicy``).

    :param env: the wrapped env (its mode, agents and spaces).
    :param sub_policies: the policy of each distinct algorithm.
    :param agents_of: the agent indices each of them serves.
    :param joint: the only sub-policy acts on the env's joint observations and actions (a jmarl
        ``JaxPolicy``); it then gets every call unchanged.
    """

    def __init__(
        self,
        env: EnhancedPettingZooEnv,
        sub_policies: list[Policy],
        agents_of: list[np.ndarray],
        joint: bool = False,
    ) -> None:
        super().__init__(
            action_space=env.action_space,
            observation_space=env.observation_space,
            action_scaling=False,
            action_bound_method=None,
        )
        self.layout = _Layout(env)
        self.routes = [_Route(p, a, env, self.layout) for p, a in zip(sub_policies, agents_of)]
        self.sub_policies = nn.ModuleList(sub_policies)
        self.owner = np.zeros(env.num_agents, np.int64)
        for k, agents in enumerate(agents_of):
            self.owner[agents] = k
        self.policies = {a: sub_policies[self.owner[k]] for k, a in enumerate(env.agents)}
        self.continuous = isinstance(env.padded_action_space, spaces.Box)
        self.joint = joint
        self._last_entries: list | None = None  # of the latest forward (AEC action mapping)
        self.is_within_training_step = self.is_within_training_step  # reach sub-policies

    @property
    def is_within_training_step(self) -> bool:  # type: ignore[override]
        """Whether a training step is running; setting it sets it on every sub-policy."""
        return bool(self.__dict__.get("_within_training_step", False))

    @is_within_training_step.setter
    def is_within_training_step(self, value: bool) -> None:
        self.__dict__["_within_training_step"] = value
        for policy in self.__dict__.get("_modules", {}).get("sub_policies", ()):
            policy.is_within_training_step = value

    def _entries(self, obs: Batch) -> list:
        return _entries(obs, self.layout, self.owner, self.routes)

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        """Joint action for a batch of env observations (``batch.obs``).

        :param batch: a Batch with ``obs`` in the env's layout (other keys are ignored).
        :param state: ignored (recurrent sub-policies are not supported).
        """
        if self.joint:
            return self.sub_policies[0](batch, state=state, **kwargs)
        entries = self._entries(batch.obs)
        act: np.ndarray | None = None
        for k, j, i in entries:
            route = self.routes[k]
            out = route.policy(route.batch(batch.obs, j, i), state=None, **kwargs)
            part = route.padded_act(to_numpy(out.act))
            if act is None:
                act = np.zeros(self.layout.joint_shape(len(batch.obs.obs)), part.dtype)
            act[self.layout.index(j, i)] = part
        self._last_entries = entries
        return Batch(act=act, state=None)

    def add_exploration_noise(self, act: Any, batch: Any) -> Any:
        """Each sub-policy's exploration noise on its agents' actions."""
        if self.joint:
            return self.sub_policies[0].add_exploration_noise(act, batch)
        out = np.array(to_numpy(act), copy=True)
        for k, j, i in self._entries(batch.obs):
            route, idx = self.routes[k], self.layout.index(j, i)
            own = route.own_act(np.array(out[idx]))
            noisy = route.policy.add_exploration_noise(own, route.batch(batch.obs, j, i))
            out[idx] = route.padded_act(to_numpy(noisy))
        return out

    def map_action(self, act: Any) -> np.ndarray:
        """Each sub-policy's action mapping (bounding, scaling) on its agents' actions."""
        return self._map_each(self._action_to_numpy(act), inverse=False)

    def map_action_inverse(self, act: Any) -> np.ndarray:
        """Inverse of :meth:`map_action` (used by the Collector for random actions)."""
        return self._map_each(self._action_to_numpy(act), inverse=True)

    def _map_each(self, act: np.ndarray, inverse: bool) -> np.ndarray:
        if self.joint:
            policy = self.sub_policies[0]
            return policy.map_action_inverse(act) if inverse else policy.map_action(act)
        if not self.continuous:
            return act
        out = np.array(act, dtype=np.result_type(act.dtype, np.float32))
        for k, j, i in self._action_entries(len(act)):
            route, idx = self.routes[k], self.layout.index(j, i)
            mapper = route.policy.map_action_inverse if inverse else route.policy.map_action
            out[idx] = route.padded_act(mapper(route.own_act(act[idx])))
        return out

    def _action_entries(self, count: int) -> list:
        """``(route, j, i)`` for actions without observations (the Collector's mapping)."""
        if self.layout.parallel:
            return _parallel_entries(count, self.routes)
        last = self._last_entries
        if last is not None and sum(len(j) for _, j, _ in last) == count:
            return last
        if len({_mapping_signature(r.policy) for r in self.routes}) == 1:
            return [(0, np.arange(count), np.zeros(count, np.int64))]
        raise RuntimeError(
            "in AEC mode, map_action needs the agent of every row: call forward() on the same "
            "rows first (sub-policies map continuous actions differently)"
        )


# --- per-agent transitions ----------------------------------------------------------------------


class _Stitched(NamedTuple):
    """Transitions found in one env sub-buffer's rows: agent ``agent[k]`` from row ``j[k]``
    to row ``jn[k]`` (its next own row in AEC mode; the same row in parallel mode)."""

    stream: int
    rows: Batch
    j: np.ndarray
    jn: np.ndarray
    agent: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


def _rows(buffer: ReplayBuffer, idx: np.ndarray, aec: bool) -> Batch:
    """The buffer's rows at ``idx`` with what re-stitching needs (``info`` flags flattened)."""
    b = buffer[idx]
    info = b.info
    needed = ("terminated", "truncated", "final") if aec else ("terminated", "truncated")
    missing = [k for k in needed if k not in info.get_keys()]
    if missing:
        raise RuntimeError(
            f"the collector's buffer has no info[{missing[0]!r}]: collect with envs wrapped in "
            "bridge.EnhancedPettingZooEnv, in the mode the manager was built for"
        )
    rows = Batch(
        obs=b.obs,
        act=b.act,
        rew=b.rew,
        obs_next=b.obs_next,
        done=np.logical_or(b.terminated, b.truncated),
        term=info.terminated,
        trunc=info.truncated,
    )
    if aec:
        rows.final = info.final
    return rows


def _same_tree(a: Any, b: Any) -> bool:
    if isinstance(a, Batch) or isinstance(b, Batch):
        if not (isinstance(a, Batch) and isinstance(b, Batch)):
            return False
        keys = set(a.get_keys())
        return keys == set(b.get_keys()) and all(_same_tree(a[k], b[k]) for k in keys)
    return np.array_equal(np.asarray(a), np.asarray(b))


def _next_own_row(agent: np.ndarray) -> np.ndarray:
    """For every row, the next row of the same agent (-1 if none)."""
    order = np.argsort(agent, kind="stable")
    same = agent[order[1:]] == agent[order[:-1]]
    nxt = np.full(len(agent), -1, np.int64)
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


class _Restitcher:
    """Finds per-agent transitions in env rows; keeps incomplete AEC ones across calls.

    :param parallel: the env's mode.
    """

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self._carry: dict[int, Batch] = {}

    def reset(self) -> None:
        """Forgets transitions still waiting for their next own row."""
        self._carry.clear()

    def __call__(self, stream: int, rows: Batch) -> _Stitched:
        """Transitions completed by ``rows`` (the next rows of env sub-buffer ``stream``)."""
        return self._parallel(stream, rows) if self.parallel else self._aec(stream, rows)

    @staticmethod
    def _parallel(stream: int, rows: Batch) -> _Stitched:
        j, i = np.nonzero(np.asarray(rows.obs.alive, bool))
        term = np.asarray(rows.term, bool)[j, i]
        trunc = np.asarray(rows.trunc, bool)[j, i] & ~term
        return _Stitched(stream, rows, j, j, i, term, trunc)

    def _aec(self, stream: int, rows: Batch) -> _Stitched:
        carry = self._carry.pop(stream, None)
        start = 0
        if carry is not None and _same_tree(carry.obs_next[-1], rows.obs[0]):
            rows, start = Batch.cat([carry, rows]), len(carry)
        agent = np.asarray(rows.obs.agent_id, np.int64)
        final = np.asarray(rows.final, bool)
        done = np.asarray(rows.done, bool)
        episode = np.cumsum(done) - done
        nxt = _next_own_row(agent)
        safe = np.maximum(nxt, 0)
        complete = (nxt >= 0) & ~final & (episode[safe] == episode)
        pending = (nxt < 0) & ~final & (episode == episode[-1]) & ~done[-1]
        if pending.any():
            self._carry[stream] = rows[int(np.flatnonzero(pending)[0]) :]
        j = np.flatnonzero(complete & (safe >= start))  # completed by a new row
        jn, i = nxt[j], agent[j]
        flag_term = np.asarray(rows.term, bool)[jn, i]
        flag_trunc = np.asarray(rows.trunc, bool)[jn, i] & ~flag_term
        ends = final[jn]
        return _Stitched(stream, rows, j, jn, i, ends & ~flag_trunc, ends & flag_trunc)


# --- buffers ------------------------------------------------------------------------------------


def _streams(buffer: ReplayBuffer) -> list[tuple[int, ReplayBuffer]]:
    """``(offset, sub-buffer)`` for every env sub-buffer of a collector's buffer."""
    if isinstance(buffer, ReplayBufferManager):
        return list(zip(buffer.subbuffer_edges[:-1].tolist(), buffer.buffers))
    return [(0, buffer)]


def _latest(sub: ReplayBuffer, count: int) -> np.ndarray:
    """Indices (within ``sub``) of its ``count`` most recent rows, oldest first."""
    last = int(sub.last_index[0])
    return (last - count + 1 + np.arange(count)) % sub.maxsize


def _add_in_rounds(target: ReplayBufferManager, data: Batch, slot: np.ndarray) -> None:
    """Appends ``data[k]`` to sub-buffer ``slot[k]``, keeping each slot's order."""
    if len(slot) == 0:
        return
    order = np.argsort(slot, kind="stable")
    group_start = np.searchsorted(slot[order], slot[order], side="left")
    rank = np.empty(len(slot), np.int64)
    rank[order] = np.arange(len(slot)) - group_start
    by_round = np.lexsort((slot, rank))
    bounds = np.searchsorted(rank[by_round], np.arange(int(rank.max()) + 2))
    for lo, hi in itertools.pairwise(bounds):
        idx = by_round[lo:hi]
        target.add(data[idx], buffer_ids=slot[idx])


def _slot_groups(slot: np.ndarray) -> list[np.ndarray]:
    """The row numbers of every distinct slot, each in row order."""
    order = np.argsort(slot, kind="stable")
    sorted_slot = slot[order]
    return np.split(order, np.flatnonzero(sorted_slot[1:] != sorted_slot[:-1]) + 1)


def _advance(sub: ReplayBuffer, pos: np.ndarray, rew: np.ndarray, done: np.ndarray) -> None:
    """Bookkeeping of ``sub`` after rows were written at its positions ``pos`` (the next ones,
    in order), as the same number of calls of its ``_update_state_pre_add`` would leave it."""
    count = len(pos)
    sub.last_index[0] = pos[-1]
    sub._size = min(sub._size + count, sub.maxsize)
    sub._insertion_idx = int((pos[-1] + 1) % sub.maxsize)
    ends = np.flatnonzero(done)
    tail = 0
    if len(ends):
        tail = int(ends[-1]) + 1
        sub._ep_return, sub._ep_len = 0.0, 0
        sub._ep_start_idx = int((pos[ends[-1]] + 1) % sub.maxsize)
    for value in rew[tail:]:  # in order, as the per-row adds sum it
        sub._ep_return += value
    sub._ep_len += count - tail


def _append(target: ReplayBufferManager, data: Batch, slot: np.ndarray) -> None:
    """Appends ``data[k]`` to sub-buffer ``slot[k]`` (each slot's rows in order), leaving
    ``target`` exactly as :func:`_add_in_rounds` does, but with one write into its storage
    instead of one ``add`` per round of rows.

    It sets the bookkeeping of Tianshou 2.0.1's (pinned) ``VectorReplayBuffer`` itself; any
    other buffer, a first write (storage not yet allocated), a slot given more rows than it
    holds or data the storage cannot take goes through ``add``.
    """
    if len(slot) == 0:
        return
    groups = _slot_groups(slot)
    direct = (
        type(target) in (VectorReplayBuffer, _AgentReplayBuffer)
        and len(target._meta.get_keys()) > 0
        and target._save_obs_next
        and not target._save_only_last_obs
        and all(len(g) <= target.buffers[int(slot[g[0]])].maxsize for g in groups)
    )
    if not direct:
        _add_in_rounds(target, data, slot)
        return
    batch = Batch()
    for key in set(target._reserved_keys).intersection(data.get_keys()):
        batch.__dict__[key] = data[key]
    done = np.logical_or(data.terminated, data.truncated)
    batch.__dict__["done"] = done
    index = np.empty(len(slot), np.int64)
    placed = []  # (slot, its rows, their positions in its sub-buffer)
    for rows in groups:
        s = int(slot[rows[0]])
        sub = target.buffers[s]
        pos = (sub._insertion_idx + np.arange(len(rows))) % sub.maxsize
        index[rows] = target._offset[s] + pos
        placed.append((s, rows, pos))
    try:
        target._meta[index] = batch
    except ValueError:  # new keys or dtypes: add() reallocates (same positions, state untouched)
        _add_in_rounds(target, data, slot)
        return
    rew = np.asarray(data.rew)
    for s, rows, pos in placed:
        _advance(target.buffers[s], pos, rew[rows], done[rows])
        target.last_index[s] = index[rows[-1]]
        target._lengths[s] = len(target.buffers[s])


def _trajectory_buffer(data: Batch, slot: np.ndarray) -> ReplayBufferManager:
    """A buffer with one exactly sized sub-buffer per slot (an agent's trajectory in one env)."""
    _, dense, counts = np.unique(slot, return_inverse=True, return_counts=True)
    buffer = ReplayBufferManager([ReplayBuffer(int(c)) for c in counts])
    _add_in_rounds(buffer, data, dense.reshape(-1))
    return buffer


class _AgentReplayBuffer(VectorReplayBuffer):
    """The off-policy manager's replay: a ``VectorReplayBuffer`` with one sub-buffer per env x
    agent, sampled with one uniform draw over all stored rows.

    Tianshou's ``ReplayBufferManager`` picks a sub-buffer per sample in proportion to its
    length and then a row uniformly, a Python loop over every sub-buffer (80 for 20 agents in 4
    envs); that is the same distribution as one uniform draw over all rows. Frame stacking
    (``stack_num > 1``) and ``batch_size <= 0`` ("all rows") keep Tianshou's sampling; an empty
    buffer gives no indices.
    """

    def sample_indices(self, batch_size: int | None) -> np.ndarray:
        """``batch_size`` indices drawn uniformly, with replacement, from all stored rows."""
        total = int(self._lengths.sum())
        if total == 0:
            return np.array([], int)  # Tianshou's divides by zero here
        if self.stack_num > 1 or batch_size is None or batch_size <= 0:
            return super().sample_indices(batch_size)
        draw = self._random_state.choice(total, batch_size)
        ends = np.cumsum(self._lengths)
        sub = np.searchsorted(ends, draw, side="right")
        return self._offset[sub] + draw - (ends[sub] - self._lengths[sub])


class _ReplayStore:
    """The off-policy manager's replay: per distinct algorithm, one sub-buffer per env x agent.

    :param routes: the distinct algorithms' routes.
    :param parallel: the env's mode (an AEC row holds one agent: smaller sub-buffers).
    """

    def __init__(self, routes: list[_Route], parallel: bool) -> None:
        self.routes = routes
        self.parallel = parallel
        self.source: ReplayBuffer | None = None
        self.buffers: list[ReplayBufferManager] = []
        self._cursor: dict[int, tuple[int, int]] = {}
        self._num_streams = 0

    def attach(self, source: ReplayBuffer) -> None:
        """Starts over for a new collector buffer (new, empty replay buffers)."""
        streams = _streams(source)
        per_env = max(sub.maxsize for _, sub in streams)
        if not self.parallel:
            num_agents = sum(len(r.agents) for r in self.routes)
            per_env = -(-per_env // num_agents) + 1
        self._num_streams = len(streams)
        self.buffers = [
            self._make(source, per_env, len(streams) * len(r.agents)) for r in self.routes
        ]
        self.source, self._cursor = source, {}

    @staticmethod
    def _make(source: ReplayBuffer, per_env: int, count: int) -> ReplayBufferManager:
        if isinstance(source, PrioritizedReplayBuffer):
            alpha, beta = source.options["alpha"], source.options["beta"]
            return PrioritizedVectorReplayBuffer(per_env * count, count, alpha=alpha, beta=beta)
        return _AgentReplayBuffer(per_env * count, count)

    def new_rows(self, stream: int, sub: ReplayBuffer) -> np.ndarray:
        """Indices (within ``sub``) of the rows added since the last call, oldest first."""
        size, last = len(sub), int(sub.last_index[0])
        before = self._cursor.get(stream)
        self._cursor[stream] = (size, last)
        if before is None or before[0] == 0 or size < before[0]:
            return _latest(sub, size)  # first look, or the buffer was emptied meanwhile
        return _latest(sub, (last - before[1]) % sub.maxsize if size else 0)

    def add(self, parts: list[_Stitched]) -> None:
        """Appends the transitions to the replay of the algorithm that owns each agent."""
        for route, target in zip(self.routes, self.buffers):
            for part in parts:  # one env sub-buffer each: their slots differ
                found = route.transitions([part])
                if found is None:
                    continue
                data, stream, agent = found
                position = np.searchsorted(route.agents, agent)  # route.agents is sorted
                _append(target, data, stream * len(route.agents) + position)


# --- the manager --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class MultiAgentTrainingStats(TrainingStats):
    """Stats of one manager update: each distinct algorithm's own stats by its policy id."""

    per_policy: dict[str, TrainingStats] = field(default_factory=dict)

    def get_loss_stats_dict(self) -> dict[str, float]:
        """Every sub-algorithm's loss stats, keys prefixed by ``"<policy id>/"``."""
        return {
            f"{pid}/{key}": value
            for pid, stats in self.per_policy.items()
            for key, value in stats.get_loss_stats_dict().items()
        }


def _manager_class(policies: Any) -> type:
    """The on- or off-policy manager class for the algorithms in ``policies``."""
    if isinstance(policies, Mapping):
        values = list(policies.values())
    elif isinstance(policies, Algorithm):
        values = [policies]
    elif isinstance(policies, Sequence) and not isinstance(policies, str):
        values = list(policies)
    else:
        values = []
    kinds = {_kind(a) for a in values if isinstance(a, Algorithm)}
    if kinds == {"on-policy"}:
        return FlexibleMultiAgentOnPolicyManager
    return FlexibleMultiAgentOffPolicyManager  # mixed or bad input: __init__ raises


class FlexibleMultiAgentPolicyManager(Algorithm):
    """Tianshou algorithms for the agents of one PettingZoo env, as one Tianshou ``Algorithm``.

    Constructing it returns a :class:`FlexibleMultiAgentOnPolicyManager` (an
    ``OnPolicyAlgorithm``) or a :class:`FlexibleMultiAgentOffPolicyManager` (an
    ``OffPolicyAlgorithm``), whichever the sub-algorithms are, so Tianshou's trainers and
    ``run_training`` accept it. See the module docstring for how it acts and learns.

    :param policies: a Tianshou ``Algorithm`` (with ``mode="shared"``), a list (one per agent
        in ``env.agents`` order for ``independent``, one per group in ``agent_groups`` order for
        ``grouped``) or a dict policy id -> ``Algorithm``. The same algorithm object may appear
        under several agents or ids: it is then shared, and updated once per update step.
    :param env: the :class:`~bridge.pettingzoo_env.EnhancedPettingZooEnv` the Collector's envs
        are copies of (a PettingZoo env is wrapped with ``mode="auto"``). Only its agents,
        spaces and mode are read.
    :param mode: ``"independent"``, ``"shared"``, ``"grouped"`` or ``"custom"``.
    :param agent_groups: for ``grouped``: group name -> agent ids; every agent in one group.
    :param policy_mapping_fn: for ``custom``: agent id -> policy id (a key of ``policies``).
    :raises ValueError: a bad configuration: unknown mode, agents missing from or unknown to
        ``agent_groups``, a mapping to an unknown policy, a policy no agent uses, a list of the
        wrong length, one algorithm for agents with different spaces, or a mix of on- and
        off-policy algorithms.
    :raises TypeError: ``policies`` holds something that is not a Tianshou ``Algorithm``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> FlexibleMultiAgentPolicyManager:
        if cls is FlexibleMultiAgentPolicyManager:
            cls = _manager_class(kwargs.get("policies", args[0] if args else None))
        return super().__new__(cls)

    def __init__(
        self,
        policies: Algorithm | Sequence[Algorithm] | Mapping[str, Algorithm],
        env: Any,
        mode: str = "independent",
        agent_groups: Mapping[str, Sequence[Hashable]] | None = None,
        policy_mapping_fn: Callable[[Any], str] | None = None,
    ) -> None:
        penv = env if isinstance(env, EnhancedPettingZooEnv) else EnhancedPettingZooEnv(env)
        config = _configure(policies, penv, mode, agent_groups, policy_mapping_fn)
        self._check_kind(config)
        sub_policies = [a.policy for a in config.distinct]
        policy = MultiAgentDispatchPolicy(penv, sub_policies, config.agents_of, config.joint)
        super().__init__(policy=policy)
        self.sub_algorithms = nn.ModuleDict(dict(zip(config.keys, config.distinct)))
        self.mode = config.mode
        self.env_mode = penv.mode
        self.agents = list(penv.agents)
        self.agent_idx = dict(penv.agent_idx)
        self.policy_map = dict(config.policy_map)
        self._by_id = dict(config.by_id)
        self._first_id = list(config.first_id)
        self._restitcher = _Restitcher(self.policy.layout.parallel)

    def _check_kind(self, config: _Config) -> None:
        expected = getattr(type(self), "_KIND", None)
        found = _kind(config.distinct[0])
        if expected is not None and found != expected:
            raise ValueError(
                f"{type(self).__name__} trains {expected} algorithms, got {found} ones; "
                "construct FlexibleMultiAgentPolicyManager to pick the right kind"
            )

    @property
    def algorithms(self) -> dict[Any, Algorithm]:
        """Policy id -> its algorithm."""
        return dict(self._by_id)

    def get_algorithm(self, agent_id: Any) -> Algorithm:
        """The algorithm that acts and learns for ``agent_id`` (as Tianshou's MARL classes)."""
        return self._by_id[self.policy_map[agent_id]]

    def _distinct(self) -> list[tuple[str, Algorithm]]:
        """``(policy id, algorithm)`` of every distinct algorithm, in agent order."""
        return list(zip(self._first_id, self.sub_algorithms.values()))

    def _require_training_step(self) -> None:
        if not self.policy.is_within_training_step:
            raise RuntimeError(
                "update() was called outside of a training step: run it from a Tianshou "
                "trainer or inside tianshou.utils.torch_utils.policy_within_training_step("
                "manager.policy)"
            )

    def _stats(self, per_policy: dict[str, TrainingStats], start: float) -> TrainingStats:
        stats = MultiAgentTrainingStats(per_policy=per_policy)
        stats.train_time = time.time() - start
        return stats

    # --- state -------------------------------------------------------------------------------

    def state_dict(  # type: ignore[override]
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """Every distinct sub-algorithm's own ``state_dict`` (optimizers included).

        Keys are ``"algorithms.<policy id>.<key>"``.
        """
        out = destination if destination is not None else {}
        for key, algorithm in self.sub_algorithms.items():
            for name, value in algorithm.state_dict(keep_vars=keep_vars).items():
                out[f"{prefix}{_ALGORITHMS_KEY}.{key}.{name}"] = value
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        """Loads what :meth:`state_dict` returned, through each sub-algorithm's own loader."""
        rest = dict(state_dict)
        rest.pop(self._STATE_DICT_KEY_OPTIMIZERS, None)
        missing: list[str] = []
        for key, algorithm in self.sub_algorithms.items():
            head = f"{_ALGORITHMS_KEY}.{key}."
            own = {k[len(head) :]: rest.pop(k) for k in list(rest) if k.startswith(head)}
            result = algorithm.load_state_dict(own, strict=strict, assign=assign)
            missing += [head + k for k in result.missing_keys]
        unexpected = list(rest)
        if strict and unexpected:
            raise RuntimeError(f"unexpected keys in the manager's state_dict: {unexpected[:5]}")
        return _IncompatibleKeys(missing, unexpected)

    # --- data ---------------------------------------------------------------------------------

    def _restitch(self, buffer: ReplayBuffer, rows_of: Callable) -> list[_Stitched]:
        """Per-agent transitions in each env sub-buffer's rows ``rows_of(stream, sub)``."""
        aec = not self.policy.layout.parallel
        parts = []
        for stream, (offset, sub) in enumerate(_streams(buffer)):
            idx = rows_of(stream, sub)
            if len(idx):
                parts.append(self._restitcher(stream, _rows(buffer, idx + offset, aec)))
        return parts


class FlexibleMultiAgentOnPolicyManager(FlexibleMultiAgentPolicyManager, OnPolicyAlgorithm):
    """The manager for on-policy sub-algorithms (PPO, A2C, ...); see the base class."""

    _KIND = "on-policy"

    def update(
        self, buffer: ReplayBuffer | None, batch_size: int | None, repeat: int
    ) -> TrainingStats:
        """One update of every distinct algorithm, on all of its agents' transitions.

        :param buffer: the collector's buffer; all of its rows are new (the on-policy trainer
            clears it after every update).
        :param batch_size: passed on to each sub-algorithm (its minibatch size).
        :param repeat: passed on to each sub-algorithm (passes over the data).
        """
        self._require_training_step()
        start = time.time()
        if buffer is None:
            return self._stats({}, start)
        if self.policy.joint:
            (pid, algorithm), *_ = self._distinct()
            stats = algorithm.update(buffer=buffer, batch_size=batch_size, repeat=repeat)
            return self._stats({pid: stats}, start)
        parts = self._restitch(buffer, lambda _, sub: _latest(sub, len(sub)))
        per_policy = {}
        for (pid, algorithm), route in zip(self._distinct(), self.policy.routes):
            found = route.transitions(parts)
            if found is None:
                continue
            data, stream, agent = found
            own = _trajectory_buffer(data, stream * len(self.agents) + agent)
            per_policy[pid] = algorithm.update(buffer=own, batch_size=batch_size, repeat=repeat)
        return self._stats(per_policy, start)

    def _update_with_batch(self, batch: Any, batch_size: int | None, repeat: int) -> Any:
        raise NotImplementedError("the manager updates its sub-algorithms through update()")


class FlexibleMultiAgentOffPolicyManager(FlexibleMultiAgentPolicyManager, OffPolicyAlgorithm):
    """The manager for off-policy sub-algorithms (DQN, SAC, ...); see the base class."""

    _KIND = "off-policy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store = _ReplayStore(self.policy.routes, self.policy.layout.parallel)

    @property
    def replay_buffers(self) -> dict[str, ReplayBuffer]:
        """Policy id -> the replay its algorithm samples from (empty before the first update)."""
        return dict(zip(self._first_id, self._store.buffers))

    def update(self, buffer: ReplayBuffer | None, sample_size: int | None) -> TrainingStats:
        """One update of every distinct algorithm, on a sample of its agents' transitions.

        :param buffer: the collector's buffer; rows added since the last update are re-stitched
            into the manager's replay first.
        :param sample_size: transitions each distinct algorithm samples (None or 0: all).
        """
        self._require_training_step()
        start = time.time()
        if buffer is None:
            return self._stats({}, start)
        if self.policy.joint:
            (pid, algorithm), *_ = self._distinct()
            return self._stats(
                {pid: algorithm.update(buffer=buffer, sample_size=sample_size)}, start
            )
        self._sync(buffer)
        per_policy = {}
        for (pid, algorithm), own in zip(self._distinct(), self._store.buffers):
            if len(own):
                per_policy[pid] = algorithm.update(buffer=own, sample_size=sample_size)
        return self._stats(per_policy, start)

    def _sync(self, buffer: ReplayBuffer) -> None:
        if self._store.source is not buffer:
            self._store.attach(buffer)
            self._restitcher.reset()
        self._store.add(self._restitch(buffer, self._store.new_rows))

    def _update_with_batch(self, batch: Any) -> Any:
        raise NotImplementedError("the manager updates its sub-algorithms through update()")
