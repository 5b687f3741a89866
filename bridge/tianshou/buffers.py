"""Replay buffers of the manager, and the one place that writes Tianshou's private buffer fields.

Tianshou 2.0.1 (pinned) keeps a buffer's bookkeeping in private fields (``_meta``, ``_size``,
``_insertion_idx``, ``_ep_return``, ``_ep_len``, ``_ep_start_idx``, ``_lengths``, ``_offset``).
:func:`append` writes them directly to add many rows in one storage write; everything else in
the bridge goes through ``ReplayBuffer``'s public methods. A Tianshou upgrade needs only this
module checked (``tests/bridge/test_replay_append.py`` compares it with ``add``).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
from tianshou.data import (
    Batch,
    PrioritizedReplayBuffer,
    PrioritizedVectorReplayBuffer,
    ReplayBuffer,
    ReplayBufferManager,
    VectorReplayBuffer,
)

if TYPE_CHECKING:
    from bridge.tianshou.dispatch import Route
    from bridge.tianshou.restitch import Stitched

__all__ = [
    "AgentReplayBuffer",
    "ReplayStore",
    "add_in_rounds",
    "append",
    "latest",
    "streams",
    "trajectory_buffer",
]


def streams(buffer: ReplayBuffer) -> list[tuple[int, ReplayBuffer]]:
    """``(offset, sub-buffer)`` for every env sub-buffer of a collector's buffer."""
    if isinstance(buffer, ReplayBufferManager):
        return list(zip(buffer.subbuffer_edges[:-1].tolist(), buffer.buffers))
    return [(0, buffer)]


def latest(sub: ReplayBuffer, count: int) -> np.ndarray:
    """Indices (within ``sub``) of its ``count`` most recent rows, oldest first."""
    last = int(sub.last_index[0])
    return (last - count + 1 + np.arange(count)) % sub.maxsize


def add_in_rounds(target: ReplayBufferManager, data: Batch, slot: np.ndarray) -> None:
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


def append(target: ReplayBufferManager, data: Batch, slot: np.ndarray) -> None:
    """Appends ``data[k]`` to sub-buffer ``slot[k]`` (each slot's rows in order), leaving
    ``target`` exactly as :func:`add_in_rounds` does, but with one write into its storage
    instead of one ``add`` per round of rows.

    It sets the bookkeeping of Tianshou 2.0.1's (pinned) ``VectorReplayBuffer`` itself; any
    other buffer, a first write (storage not yet allocated), a slot given more rows than it
    holds or data the storage cannot take goes through ``add``.
    """
    if len(slot) == 0:
        return
    groups = _slot_groups(slot)
    direct = (
        type(target) in (VectorReplayBuffer, AgentReplayBuffer)
        and len(target._meta.get_keys()) > 0
        and target._save_obs_next
        and not target._save_only_last_obs
        and all(len(g) <= target.buffers[int(slot[g[0]])].maxsize for g in groups)
    )
    if not direct:
        add_in_rounds(target, data, slot)
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
        add_in_rounds(target, data, slot)
        return
    rew = np.asarray(data.rew)
    for s, rows, pos in placed:
        _advance(target.buffers[s], pos, rew[rows], done[rows])
        target.last_index[s] = index[rows[-1]]
        target._lengths[s] = len(target.buffers[s])


def trajectory_buffer(data: Batch, slot: np.ndarray) -> ReplayBufferManager:
    """A buffer with one exactly sized sub-buffer per slot (an agent's trajectory in one env)."""
    _, dense, counts = np.unique(slot, return_inverse=True, return_counts=True)
    buffer = ReplayBufferManager([ReplayBuffer(int(c)) for c in counts])
    add_in_rounds(buffer, data, dense.reshape(-1))
    return buffer


class AgentReplayBuffer(VectorReplayBuffer):
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


class ReplayStore:
    """The off-policy manager's replay: per distinct algorithm, one sub-buffer per env x agent.

    :param routes: the distinct algorithms' routes.
    :param parallel: the env's mode (an AEC row holds one agent: smaller sub-buffers).
    """

    def __init__(self, routes: list[Route], parallel: bool) -> None:
        self.routes = routes
        self.parallel = parallel
        self.source: ReplayBuffer | None = None
        self.buffers: list[ReplayBufferManager] = []
        self._cursor: dict[int, tuple[int, int]] = {}
        self._num_streams = 0

    def attach(self, source: ReplayBuffer) -> None:
        """Starts over for a new collector buffer (new, empty replay buffers)."""
        parts = streams(source)
        per_env = max(sub.maxsize for _, sub in parts)
        if not self.parallel:
            num_agents = sum(len(r.agents) for r in self.routes)
            per_env = -(-per_env // num_agents) + 1
        self._num_streams = len(parts)
        self.buffers = [
            self._make(source, per_env, len(parts) * len(r.agents)) for r in self.routes
        ]
        self.source, self._cursor = source, {}

    @staticmethod
    def _make(source: ReplayBuffer, per_env: int, count: int) -> ReplayBufferManager:
        if isinstance(source, PrioritizedReplayBuffer):
            alpha, beta = source.options["alpha"], source.options["beta"]
            return PrioritizedVectorReplayBuffer(per_env * count, count, alpha=alpha, beta=beta)
        return AgentReplayBuffer(per_env * count, count)

    def new_rows(self, stream: int, sub: ReplayBuffer) -> np.ndarray:
        """Indices (within ``sub``) of the rows added since the last call, oldest first."""
        size, last = len(sub), int(sub.last_index[0])
        before = self._cursor.get(stream)
        self._cursor[stream] = (size, last)
        if before is None or before[0] == 0 or size < before[0]:
            return latest(sub, size)  # first look, or the buffer was emptied meanwhile
        return latest(sub, (last - before[1]) % sub.maxsize if size else 0)

    def add(self, parts: list[Stitched]) -> None:
        """Appends the transitions to the replay of the algorithm that owns each agent."""
        for route, target in zip(self.routes, self.buffers):
            for part in parts:  # one env sub-buffer each: their slots differ
                found = route.transitions([part])
                if found is None:
                    continue
                data, stream, agent = found
                position = np.searchsorted(route.agents, agent)  # route.agents is sorted
                append(target, data, stream * len(route.agents) + position)
