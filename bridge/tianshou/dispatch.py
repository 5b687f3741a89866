"""The manager's policy: every distinct sub-policy called once per step on all of its agents'
rows, cut out of the env's padded layout (see :mod:`bridge.tianshou.manager`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from tianshou.algorithm.algorithm_base import Policy
from tianshou.data import Batch, to_numpy
from torch import nn

from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.tianshou.global_info import global_rows
from bridge.tianshou.restitch import Stitched
from bridge.tianshou.training_step import PassesOnTrainingStep

__all__ = ["MultiAgentDispatchPolicy", "Route", "RowLayout"]


class RowLayout:
    """Where agents' entries sit in the env's rows (AEC: one agent a row; parallel: all).

    An entry is addressed by ``(j, i)``: env row ``j`` and agent index ``i`` (in AEC mode the
    index of the row's ``agent_id``).
    """

    def __init__(self, env: EnhancedPettingZooEnv) -> None:
        self.parallel = env.mode == "parallel"
        self.has_mask = env.has_action_mask
        self.num_agents = env.num_agents
        self.act_shape = env.padded_action_space.shape
        self.state = env.state_space is not None  # the global info is obs["state"]
        self.agent_idx = dict(env.agent_idx)
        # integer agent ids are indices (agent_id="index"), unless the agents' names are ints
        self._int_names = all(isinstance(a, (int, np.integer)) for a in env.agents)

    def agent_indices(self, agent_id: Any) -> np.ndarray:
        """The agent indices of AEC rows' ``agent_id`` values (names or indices), int64."""
        ids = np.asarray(agent_id).reshape(-1)
        if ids.dtype.kind in "iu" and not self._int_names:
            bad = ids[(ids < 0) | (ids >= self.num_agents)]
            if len(bad):
                raise ValueError(f"agent index {bad[0]} out of range for {self.num_agents} agents")
            return ids.astype(np.int64)
        try:
            return np.array([self.agent_idx[a] for a in ids.tolist()], np.int64)
        except KeyError as e:
            raise ValueError(
                f"unknown agent_id {e.args[0]!r} in the observations; the env's agents are "
                f"{list(self.agent_idx)}"
            ) from None

    def index(self, j: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, ...]:
        """Index of the entries ``(j, i)`` in an array laid out like the env's rows."""
        return (j, i) if self.parallel else (j,)

    def joint_shape(self, count: int) -> tuple[int, ...]:
        """Shape of the joint action for ``count`` env rows."""
        agents = (self.num_agents,) if self.parallel else ()
        return (count, *agents, *self.act_shape)


class Route:
    """One distinct algorithm: its policy, its agents, and their own spaces' layout.

    Its agents have equal own spaces (checked at configuration), so their entries are cut out of
    the env's padded layout the same way: observations to the agent's own shape, masks and
    actions to the agent's own action space.

    :param policy: the algorithm's policy.
    :param agents: the agent indices it serves.
    :param env: the wrapped env.
    :param layout: the env's row layout.
    :param global_info: put the global info of every transition's row and next row in its
        ``info`` (``global_obs``, ``global_obs_next``; see :mod:`bridge.tianshou.global_info`).
    """

    def __init__(
        self,
        policy: Policy,
        agents: np.ndarray,
        env: EnhancedPettingZooEnv,
        layout: RowLayout,
        global_info: bool = False,
    ) -> None:
        self.policy, self.agents, self.layout = policy, agents, layout
        self.global_info = global_info
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

    def transitions(self, parts: list[Stitched]) -> tuple[Batch, np.ndarray, np.ndarray] | None:
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

    def _data(self, part: Stitched, keep: np.ndarray) -> Batch:
        j, jn, i, rows = part.j[keep], part.jn[keep], part.agent[keep], part.rows
        return Batch(
            obs=self.obs(rows.obs, j, i),
            act=self.own_act(np.asarray(rows.act)[self.layout.index(j, i)]),
            rew=part.rew[keep],
            terminated=part.terminated[keep],
            truncated=part.truncated[keep],
            obs_next=self._next_obs(rows, jn, i, part.from_obs_next[keep]),
            info=self._info(rows, j, jn, i, part.from_obs_next[keep]),
        )

    def _info(
        self, rows: Batch, j: np.ndarray, jn: np.ndarray, i: np.ndarray, from_next: np.ndarray
    ) -> Batch:
        """The transitions' ``info``: the agent index, and the global info if asked for."""
        info = Batch(agent_id=i)
        if self.global_info:
            state, n = self.layout.state, self.layout.num_agents
            info.global_obs = global_rows(rows.obs, j, state, n)
            nxt = global_rows(rows.obs_next if from_next.all() else rows.obs, jn, state, n)
            if from_next.any() and not from_next.all():
                nxt[from_next] = global_rows(rows.obs_next, jn[from_next], state, n)
            info.global_obs_next = nxt
        return info

    def _next_obs(self, rows: Batch, jn: np.ndarray, i: np.ndarray, from_next: np.ndarray) -> Any:
        """Agents' next observations: ``obs_next[jn]`` where ``from_next``, else ``obs[jn]``."""
        if from_next.all():
            return self.obs(rows.obs_next, jn, i)
        out = self.obs(rows.obs, jn, i)
        if from_next.any():
            out[from_next] = self.obs(rows.obs_next, jn, i)[from_next]
        return out


def _parallel_entries(count: int, routes: list[Route]) -> list:
    """``(route index, j, i)`` of every route for ``count`` parallel-mode rows (agent-minor)."""
    rows = np.arange(count)
    return [
        (k, np.repeat(rows, len(r.agents)), np.tile(r.agents, count)) for k, r in enumerate(routes)
    ]


def _entries(obs: Batch, layout: RowLayout, owner: np.ndarray, routes: list[Route]) -> list:
    """``(route index, j, i)`` for every route with entries in a batch of env observations."""
    if layout.parallel:
        return _parallel_entries(len(obs.obs), routes)
    agent = layout.agent_indices(obs.agent_id)
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


class MultiAgentDispatchPolicy(PassesOnTrainingStep, Policy):
    """The manager's policy: one call of every sub-policy per step, on all of its agents' rows.

    Acts in the layout of the env it was built for (see the module docstring). ``policies``
    maps agent id -> its sub-policy (as in Tianshou's ``MultiAgentPolicy``).

    :param env: the wrapped env (its mode, agents and spaces).
    :param sub_policies: the policy of each distinct algorithm.
    :param agents_of: the agent indices each of them serves.
    :param joint: the only sub-policy acts on the env's joint observations and actions (a jmarl
        ``JaxPolicy``); it then gets every call unchanged.
    :param global_info: for each sub-policy, whether its transitions carry the global info
        (default: none do).

    Setting ``is_within_training_step`` sets it on every sub-policy.
    """

    _INNER_POLICIES = "sub_policies"

    def __init__(
        self,
        env: EnhancedPettingZooEnv,
        sub_policies: list[Policy],
        agents_of: list[np.ndarray],
        joint: bool = False,
        global_info: list[bool] | None = None,
    ) -> None:
        super().__init__(
            action_space=env.action_space,
            observation_space=env.observation_space,
            action_scaling=False,
            action_bound_method=None,
        )
        self.layout = RowLayout(env)
        wants = [False] * len(sub_policies) if global_info is None else global_info
        self.routes = [
            Route(p, a, env, self.layout, g) for p, a, g in zip(sub_policies, agents_of, wants)
        ]
        self.sub_policies = nn.ModuleList(sub_policies)
        self.owner = np.zeros(env.num_agents, np.int64)
        for k, agents in enumerate(agents_of):
            self.owner[agents] = k
        self.policies = {a: sub_policies[self.owner[k]] for k, a in enumerate(env.agents)}
        self.continuous = isinstance(env.padded_action_space, spaces.Box)
        self.joint = joint
        self._last_entries: list | None = None  # of the latest forward (AEC action mapping)
        self.is_within_training_step = self.is_within_training_step  # reach sub-policies

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
