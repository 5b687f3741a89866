"""What every training driver writes: metrics, checkpoints, the curve and a summary.

Drivers (the jitted JAX-env loop in :mod:`jmarl.run.driver`, the host-stepped PettingZoo
loop in ``bridge``) hand over metrics ``{name: [seeds, k]}`` for ``k`` updates at a time;
the recorder appends them to ``metrics.jsonl``, stops on non-finite values **before**
touching the checkpoint, then writes the checkpoint atomically.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jmarl.run.checkpoint import save_checkpoint
from jmarl.run.config import RunConfig, to_dict
from jmarl.run.plotting import plot_returns

Progress = Callable[[int, dict[str, Any]], None]


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the last good checkpoint is kept."""


def finite(tree: Any) -> bool:
    """Whether every leaf of ``tree`` is finite."""
    return all(bool(np.all(np.isfinite(np.asarray(v)))) for v in jax.tree.leaves(tree))


def json_value(v: Any) -> Any:
    """A numpy scalar/array as JSON (non-finite -> ``None``, ints stay ints)."""
    v = np.asarray(v)
    if v.ndim:
        return [json_value(x) for x in v]
    f = float(v)
    if not math.isfinite(f):
        return None
    return int(f) if np.issubdtype(v.dtype, np.integer) else f


def nan_mean(x: Any, axis: int | None = None) -> Any:
    """``np.nanmean`` that returns NaN for all-NaN slices without a RuntimeWarning (updates
    in which no episode finished have no return)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(x, dtype=float), axis=axis)


def metric_rows(metrics: dict[str, np.ndarray], t0: float, t1: float) -> list[dict[str, Any]]:
    """Per-update rows from chunk metrics ``{name: [seeds, k]}`` (means over seeds).

    ``wall_time_s`` is interpolated between the chunk's start ``t0`` and end ``t1``.
    """
    k = metrics["env_steps"].shape[1]
    rows = []
    for i in range(k):
        row: dict[str, Any] = {
            "env_steps": int(metrics["env_steps"][0, i]),
            "wall_time_s": round(t0 + (t1 - t0) * (i + 1) / k, 3),
        }
        for name, v in metrics.items():
            if name == "env_steps":
                continue
            col = np.asarray(v[:, i], dtype=float)
            row[name] = json_value(nan_mean(col))
            if name == "episode_return" and col.shape[0] > 1:
                row["episode_return_per_seed"] = json_value(col)
        rows.append(row)
    return rows


class RunRecorder:
    """Writes one run's folder: ``config.json`` on creation, then per chunk of updates
    ``metrics.jsonl`` rows and ``checkpoint.msgpack``; ``returns.png`` at the end."""

    def __init__(
        self,
        cfg: RunConfig,
        out_dir: Path,
        progress: Progress | None = None,
        started_at: float | None = None,
    ):
        """:param started_at: ``time.perf_counter()`` when the run started (default: now),
        if the driver compiled before creating the recorder."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg if cfg.out == str(out_dir) else replace(cfg, out=str(out_dir))
        self.out_dir = out_dir
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.t_start = time.perf_counter() if started_at is None else started_at
        self.t_prev = 0.0
        self.compile_s = 0.0
        (out_dir / "config.json").write_text(json.dumps(to_dict(self.cfg), indent=2) + "\n")
        self._metrics_path = out_dir / "metrics.jsonl"
        self._metrics_path.write_text("")

    def started(self) -> None:
        """The configuration is valid and compilation starts."""
        if self.progress is not None:
            self.progress(0, {})

    def compiled(self) -> None:
        """Compilation is done; training time starts."""
        self.t_prev = time.perf_counter() - self.t_start
        self.compile_s = self.t_prev

    def record(self, metrics: dict[str, Any], learner: Any) -> None:
        """Appends ``k`` updates' metrics; checkpoints the ``learner`` state if all is finite.

        :raises TrainingError: non-finite loss or parameters (nothing is checkpointed).
        """
        metrics = jax.device_get(metrics)
        t_now = time.perf_counter() - self.t_start
        new_rows = metric_rows(metrics, self.t_prev, t_now)
        self.t_prev = t_now
        with self._metrics_path.open("a") as f:
            f.writelines(json.dumps(row) + "\n" for row in new_rows)
        self.rows.extend(new_rows)
        if not (finite(metrics["loss"]) and finite(learner)):
            first_bad = next(
                (i for i, r in enumerate(new_rows) if r.get("loss") is None), len(new_rows) - 1
            )
            update = len(self.rows) - len(new_rows) + first_bad + 1
            raise TrainingError(
                f"non-finite loss at update {update}; stopped. The last good checkpoint in "
                f"{self.out_dir} is kept."
            )
        meta = {"update": len(self.rows), "env_steps": new_rows[-1]["env_steps"]}
        save_checkpoint(self.out_dir, learner, meta)
        if self.progress is not None:
            self.progress(new_rows[-1]["env_steps"], new_rows[-1])

    def finish(self) -> dict[str, Any]:
        """Writes ``returns.png`` and returns the run summary (final return: mean over the
        last 10% of updates)."""
        rows, cfg = self.rows, self.cfg
        per_seed = np.asarray(
            [r.get("episode_return_per_seed", [r["episode_return"]]) for r in rows], dtype=float
        ).T
        plot_returns(
            self.out_dir / "returns.png",
            [r["env_steps"] for r in rows],
            per_seed,
            f"{cfg.algo.upper()} ({cfg.sharing}) on {cfg.env}",
        )
        mean = nan_mean(per_seed, axis=0)
        tail = mean[-max(1, len(mean) // 10) :]
        final = float(nan_mean(tail)) if np.isfinite(tail).any() else None
        return {
            "out": str(self.out_dir),
            "env_steps": rows[-1]["env_steps"] if rows else 0,
            "updates": len(rows),
            "final_episode_return": final,
            "compile_s": round(self.compile_s, 2),
            "wall_time_s": round(time.perf_counter() - self.t_start, 2),
        }
