"""The off-policy manager's replay: ``_append`` (one storage write per call) must leave a
Tianshou buffer exactly as appending round by round with ``ReplayBufferManager.add`` does, and
``_AgentReplayBuffer`` samples stored rows uniformly, as Tianshou's two-stage draw does."""

from __future__ import annotations

import numpy as np
import pytest
from tianshou.data import Batch, PrioritizedVectorReplayBuffer, VectorReplayBuffer

import bridge.tianshou.buffers as buffers_module
from bridge.tianshou.buffers import AgentReplayBuffer as _AgentReplayBuffer
from bridge.tianshou.buffers import add_in_rounds as _add_in_rounds
from bridge.tianshou.buffers import append as _append

SLOTS, CAPACITY = 4, 5


def _rows(rng: np.random.Generator, count: int) -> Batch:
    """``count`` transitions with array and dict observations, ~30% of them ending episodes."""
    terminated = rng.random(count) < 0.2
    return Batch(
        obs=Batch(x=rng.normal(size=(count, 3)).astype(np.float32), id=rng.integers(0, 9, count)),
        act=rng.integers(0, 5, count),
        rew=rng.normal(size=count),
        terminated=terminated,
        truncated=~terminated & (rng.random(count) < 0.1),
        obs_next=Batch(
            x=rng.normal(size=(count, 3)).astype(np.float32), id=rng.integers(0, 9, count)
        ),
        info=Batch(agent_id=rng.integers(0, 3, count)),
    )


def _state(buffer: VectorReplayBuffer) -> dict:
    every = buffer.sample_indices(0)
    out = {
        "size": len(buffer),
        "last_index": buffer.last_index.tolist(),
        "lengths": buffer._lengths.tolist(),
        "indices": every.tolist(),
        "next": buffer.next(every).tolist(),
        "prev": buffer.prev(every).tolist(),
        "unfinished": buffer.unfinished_index().tolist(),
        "subs": [
            (s._insertion_idx, len(s), int(s.last_index[0]), s._ep_len, s._ep_start_idx)
            for s in buffer.buffers
        ],
    }
    return out


def _assert_same(ours: VectorReplayBuffer, theirs: VectorReplayBuffer) -> None:
    assert _state(ours) == _state(theirs)
    every = theirs.sample_indices(0)
    a, b = ours[every], theirs[every]
    for key in ("act", "rew", "terminated", "truncated", "done"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("x", "id"):
        np.testing.assert_array_equal(a.obs[key], b.obs[key])
        np.testing.assert_array_equal(a.obs_next[key], b.obs_next[key])
    np.testing.assert_array_equal(a.info.agent_id, b.info.agent_id)
    for s, t in zip(ours.buffers, theirs.buffers):
        np.testing.assert_allclose(s._ep_return, t._ep_return, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", [VectorReplayBuffer, _AgentReplayBuffer])
def test_append_matches_round_by_round_add(
    seed: int, kind: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    ours = kind(SLOTS * CAPACITY, SLOTS)
    theirs = VectorReplayBuffer(SLOTS * CAPACITY, SLOTS)
    fallbacks = []

    def counted(target: VectorReplayBuffer, data: Batch, slot: np.ndarray) -> None:
        fallbacks.append(len(slot))
        _add_in_rounds(target, data, slot)

    monkeypatch.setattr(buffers_module, "add_in_rounds", counted)
    # call sizes: wrap-around, a slot given more rows than it holds (falls back to add), empty
    sizes = (7, 3, 11, 1, 0, 9, 30, 2, 6, 12)
    for count in sizes:
        data, slot = _rows(rng, count), rng.integers(0, SLOTS, count)
        _append(ours, data, slot)
        _add_in_rounds(theirs, data, slot)
        _assert_same(ours, theirs)
    # the first write allocates the storage through add(); 30 rows overfill a slot
    assert fallbacks[:1] == [7] and 30 in fallbacks
    assert len(fallbacks) <= 4  # the others were direct writes


def test_append_falls_back_for_prioritized_buffers() -> None:
    rng = np.random.default_rng(0)
    ours = PrioritizedVectorReplayBuffer(SLOTS * CAPACITY, SLOTS, alpha=0.6, beta=0.4)
    theirs = PrioritizedVectorReplayBuffer(SLOTS * CAPACITY, SLOTS, alpha=0.6, beta=0.4)
    for count in (6, 9, 4):
        data, slot = _rows(rng, count), rng.integers(0, SLOTS, count)
        _append(ours, data, slot)
        _add_in_rounds(theirs, data, slot)
        _assert_same(ours, theirs)
        np.testing.assert_array_equal(ours.weight, theirs.weight)


def test_agent_replay_samples_every_stored_row_uniformly() -> None:
    rng = np.random.default_rng(0)
    buffer = _AgentReplayBuffer(SLOTS * CAPACITY, SLOTS)
    # slot 0 wraps around (full), slot 1 holds 2 rows, slot 2 none, slot 3 holds 4
    slot = np.array([0] * 8 + [1] * 2 + [3] * 4)
    _append(buffer, _rows(rng, len(slot)), slot)
    stored = np.sort(VectorReplayBuffer.sample_indices(buffer, 0))
    assert len(stored) == CAPACITY + 2 + 4
    draws = 110_000
    sample = buffer.sample_indices(draws)
    assert sample.shape == (draws,) and np.isin(sample, stored).all()
    counts = np.bincount(sample, minlength=buffer.maxsize)[stored]
    expected = draws / len(stored)  # 10,000 each: 5 standard deviations is 5%
    assert np.all(np.abs(counts - expected) < 0.05 * expected), counts


def test_agent_replay_keeps_tianshou_sampling_for_all_rows_and_empty() -> None:
    rng = np.random.default_rng(1)
    ours = _AgentReplayBuffer(SLOTS * CAPACITY, SLOTS)
    theirs = VectorReplayBuffer(SLOTS * CAPACITY, SLOTS)
    assert ours.sample_indices(8).shape == (0,)
    data, slot = _rows(rng, 9), rng.integers(0, SLOTS, 9)
    _append(ours, data, slot)
    _append(theirs, data, slot)
    for size in (0, None):
        np.testing.assert_array_equal(
            np.sort(ours.sample_indices(size)), np.sort(theirs.sample_indices(size))
        )
