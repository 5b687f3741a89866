"""Per-agent transitions from the Collector's env rows (parallel rows and AEC re-stitching);
see :mod:`bridge.tianshou.manager` for the rules.

AEC rows come in two styles. Rows of :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv`
carry per-agent flags and final rows in ``info`` and credit each agent's reward to its own next
row. Rows of ``tianshou.env.PettingZooEnv`` have none of that: their reward vector is the
instantaneous ``env.rewards`` after each AEC step, and the episode ends when the first agent
finishes. For those, an agent's transition from its row ``j`` sums its column of the reward
vectors from ``j`` up to (not including) its next own row ``j'``, or up to and including the
episode's last row ``e``, which ends every open transition of the episode (terminal or
truncated as the episode is; ``obs_next[e]`` is then the next observation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from tianshou.data import Batch, ReplayBuffer

__all__ = ["Restitcher", "Stitched", "buffer_rows"]


class Stitched(NamedTuple):
    """Transitions found in one env sub-buffer's rows: agent ``agent[k]`` from row ``j[k]``
    to row ``jn[k]`` (its next own row in AEC mode; the same row in parallel mode) with reward
    ``rew[k]``; the next observation is ``obs_next[jn[k]]`` where ``from_obs_next[k]``, else
    ``obs[jn[k]]``."""

    stream: int
    rows: Batch
    j: np.ndarray
    jn: np.ndarray
    agent: np.ndarray
    rew: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    from_obs_next: np.ndarray


_FLAGS = ("terminated", "truncated", "final")


def buffer_rows(
    buffer: ReplayBuffer, idx: np.ndarray, aec: bool, agent_indices: Callable[[Any], np.ndarray]
) -> Batch:
    """The buffer's rows at ``idx`` with what re-stitching needs (``info`` flags flattened,
    AEC ``agent`` indices from ``agent_indices(obs.agent_id)``; ``tianshou`` True for rows of
    ``tianshou.env.PettingZooEnv``, which have no per-agent flags)."""
    b = buffer[idx]
    info = b.info
    keys = set(info.get_keys())
    needed = _FLAGS if aec else _FLAGS[:2]
    missing = [k for k in needed if k not in keys]
    tianshou = aec and len(missing) == len(needed)
    if missing and not tianshou:
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
    )
    if tianshou:
        rows.term, rows.trunc = np.asarray(b.terminated, bool), np.asarray(b.truncated, bool)
    else:
        rows.term, rows.trunc = info.terminated, info.truncated
    if aec:
        rows.agent = agent_indices(b.obs.agent_id)
        rows.final = np.zeros(len(idx), bool) if tianshou else info.final
        rows.tianshou = np.full(len(idx), tianshou)
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


class Restitcher:
    """Finds per-agent transitions in env rows; keeps incomplete AEC ones across calls.

    :param parallel: the env's mode.
    """

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self._carry: dict[int, Batch] = {}

    def reset(self) -> None:
        """Forgets transitions still waiting for their next own row."""
        self._carry.clear()

    def __call__(self, stream: int, rows: Batch) -> Stitched:
        """Transitions completed by ``rows`` (the next rows of env sub-buffer ``stream``)."""
        if self.parallel:
            return self._parallel(stream, rows)
        carry = self._carry.pop(stream, None)
        start = 0
        if carry is not None and _same_tree(carry.obs_next[-1], rows.obs[0]):
            rows, start = Batch.cat([carry, rows]), len(carry)
        if bool(np.asarray(rows.tianshou)[-1]):
            return self._aec_instantaneous(stream, rows, start)
        return self._aec(stream, rows, start)

    @staticmethod
    def _parallel(stream: int, rows: Batch) -> Stitched:
        j, i = np.nonzero(np.asarray(rows.obs.alive, bool))
        term = np.asarray(rows.term, bool)[j, i]
        trunc = np.asarray(rows.trunc, bool)[j, i] & ~term
        rew = np.asarray(rows.rew, np.float64)[j, i]
        return Stitched(stream, rows, j, j, i, rew, term, trunc, np.ones(len(j), bool))

    def _keep_pending(self, stream: int, rows: Batch, pending: np.ndarray) -> None:
        if pending.any():
            self._carry[stream] = rows[int(np.flatnonzero(pending)[0]) :]

    def _aec(self, stream: int, rows: Batch, start: int) -> Stitched:
        """Rows of EnhancedPettingZooEnv: completed by the agent's next own row."""
        agent = np.asarray(rows.agent, np.int64)
        final = np.asarray(rows.final, bool)
        done = np.asarray(rows.done, bool)
        episode = np.cumsum(done) - done
        nxt = _next_own_row(agent)
        safe = np.maximum(nxt, 0)
        complete = (nxt >= 0) & ~final & (episode[safe] == episode)
        self._keep_pending(stream, rows, (nxt < 0) & ~final & (episode == episode[-1]) & ~done[-1])
        j = np.flatnonzero(complete & (safe >= start))  # completed by a new row
        jn, i = nxt[j], agent[j]
        flag_term = np.asarray(rows.term, bool)[jn, i]
        flag_trunc = np.asarray(rows.trunc, bool)[jn, i] & ~flag_term
        ends = final[jn]
        rew = np.asarray(rows.rew, np.float64)[jn, i]
        term, trunc = ends & ~flag_trunc, ends & flag_trunc
        return Stitched(stream, rows, j, jn, i, rew, term, trunc, np.zeros(len(j), bool))

    def _aec_instantaneous(self, stream: int, rows: Batch, start: int) -> Stitched:
        """Rows of ``tianshou.env.PettingZooEnv`` (see the module docstring)."""
        agent = np.asarray(rows.agent, np.int64)
        done = np.asarray(rows.done, bool)
        count = len(agent)
        episode = np.cumsum(done) - done
        nxt = _next_own_row(agent)
        safe = np.maximum(nxt, 0)
        has_next = (nxt >= 0) & (episode[safe] == episode)
        ends = np.flatnonzero(done)
        first_end = np.searchsorted(ends, np.arange(count))  # the episode's last row, if seen
        has_end = first_end < len(ends)
        end = ends[np.minimum(first_end, max(len(ends) - 1, 0))] if len(ends) else first_end
        closes = ~has_next & has_end
        self._keep_pending(stream, rows, ~has_next & ~has_end)
        jn = np.where(has_next, nxt, end)
        j = np.flatnonzero((has_next | closes) & (jn >= start))  # completed by a new row
        jn, i, closing = jn[j], agent[j], closes[j]
        totals = np.concatenate([np.zeros((1, rows.rew.shape[1])), np.cumsum(rows.rew, axis=0)])
        upto = jn + closing  # sum rows j .. jn-1, or j .. e at the episode's end
        rew = totals[upto, i] - totals[j, i]
        term = closing & np.asarray(rows.term, bool)[jn]
        trunc = closing & np.asarray(rows.trunc, bool)[jn] & ~term
        return Stitched(stream, rows, j, jn, i, rew, term, trunc, closing)
