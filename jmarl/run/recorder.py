"""What every training driver writes: metrics, checkpoints, the curve and a summary.

Drivers (the jitted JAX-env loop in :mod:`jmarl.run.driver`, the host-stepped PettingZoo
loop in ``bridge``) hand over metrics ``{name: [seeds, k]}`` for ``k`` updates at a time;
the recorder appends them to ``metrics.jsonl`` (and to the loggers of ``cfg.logger``), stops
on non-finite values **before** touching the checkpoint, then writes the checkpoint
atomically when one is due. Under :func:`stop_on_signals`, Ctrl-C (SIGINT) or SIGTERM stops
the run at the end of the current chunk with a checkpoint and the plot (:class:`RunInterrupted`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jmarl.run.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    atomic_write_bytes,
    save_checkpoint,
)
from jmarl.run.config import RunConfig, to_dict
from jmarl.run.folder import TENSORBOARD_DIR
from jmarl.run.plotting import plot_returns

Progress = Callable[[int, dict[str, Any]], None]

# Signals that stop a run at the end of its current chunk, and how a message names them.
STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}
_STOP = threading.Event()
_STOPPED_BY: list[signal.Signals] = []  # the signal that set _STOP


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the last good checkpoint is kept."""


class RunInterrupted(Exception):
    """A stop signal (Ctrl-C, SIGTERM) stopped the run; its checkpoint and plot are saved.

    :param message: one line.
    :param exit_code: 128 + the signal's number, as a shell reports a process the signal
        ended: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_code: int = 128 + signal.SIGINT):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active, a first SIGINT (Ctrl-C) or SIGTERM asks the run to stop after the
    current chunk, saving a checkpoint and the plot; after it both signals act as they did
    before (a second Ctrl-C interrupts at once, a second SIGTERM ends the process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    def handler(signum: int, frame: Any) -> None:
        _STOPPED_BY[:] = [signal.Signals(signum)]
        _STOP.set()
        restore()

    _STOP.clear()
    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        restore()
        _STOP.clear()


def _interrupted(update: int, out_dir: Path, resumable: bool) -> RunInterrupted:
    """The one-line error of a run stopped by a signal after ``update`` updates."""
    signum = _STOPPED_BY[0] if _STOPPED_BY else signal.SIGINT
    how = f" (continue with: jmarl train --resume --out {out_dir})" if resumable else ""
    return RunInterrupted(
        f"{STOP_SIGNALS[signum]} at update {update}; checkpoint and returns.png saved in "
        f"{out_dir}{how}",
        exit_code=128 + signum,
    )


class _TensorBoard:
    """Every numeric metric of every row as a TensorBoard scalar (step: ``env_steps``)."""

    def __init__(self, logdir: Path, purge_step: int | None):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(logdir), purge_step=purge_step)

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            step = row["env_steps"]
            for name, v in row.items():
                values = v if isinstance(v, list) else [v]
                for i, x in enumerate(values):
                    if isinstance(x, (int, float)) and not isinstance(x, bool):
                        tag = f"{name}/seed_{i}" if isinstance(v, list) else name
                        self.writer.add_scalar(tag, x, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


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
    ``metrics.jsonl`` rows and, when due, ``checkpoint.msgpack``; ``returns.png`` at the end.

    A fresh run replaces the files of an earlier run in the folder (the CLI allows that only
    with ``--overwrite``); with ``resume`` the folder's metrics are kept up to the update of
    its checkpoint (:meth:`resume_from`) and new rows are appended.

    :param num_updates: the run's updates; without it every chunk is checkpointed.
    """

    def __init__(
        self,
        cfg: RunConfig,
        out_dir: Path,
        progress: Progress | None = None,
        num_updates: int | None = None,
        resume: bool = False,
        started_at: float | None = None,
    ):
        """:param started_at: ``time.perf_counter()`` when the run started (default: now),
        if the driver compiled before creating the recorder."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg if cfg.out == str(out_dir) else replace(cfg, out=str(out_dir))
        self.out_dir = out_dir
        self.progress = progress
        self.num_updates = num_updates
        self.rows: list[dict[str, Any]] = []
        self.saved_update = 0
        self.t_start = time.perf_counter() if started_at is None else started_at
        self.t_prev = 0.0
        self.compile_s = 0.0
        self._metrics_path = out_dir / "metrics.jsonl"
        self._tensorboard: _TensorBoard | None = None
        if not resume:
            for name in (CHECKPOINT_NAME, "returns.png"):
                (out_dir / name).unlink(missing_ok=True)
            shutil.rmtree(out_dir / TENSORBOARD_DIR, ignore_errors=True)
            self._metrics_path.write_text("")
        config = json.dumps(to_dict(self.cfg), indent=2) + "\n"
        atomic_write_bytes(out_dir / "config.json", config.encode())

    def resume_from(self, update: int) -> None:
        """Keeps the first ``update`` rows of ``metrics.jsonl`` (those the checkpoint covers;
        later rows of the interrupted run are dropped) and continues the wall time."""
        lines = self._metrics_path.read_text().splitlines() if self._metrics_path.is_file() else []
        if len(lines) < update:
            raise CheckpointError(
                f"{self._metrics_path} has {len(lines)} rows but the checkpoint is at update "
                f"{update}; the run folder is damaged"
            )
        kept = "".join(line + "\n" for line in lines[:update])
        atomic_write_bytes(self._metrics_path, kept.encode())
        self.rows = [json.loads(line) for line in lines[:update]]
        self.saved_update = update
        if self.rows:  # wall time goes on from the interrupted run's
            self.t_prev = float(self.rows[-1].get("wall_time_s") or 0.0)
            self.t_start -= self.t_prev

    def started(self) -> None:
        """The configuration is valid and compilation starts."""
        if "tensorboard" in self.cfg.logger:
            purge = self.rows[-1]["env_steps"] + 1 if self.rows else None
            self._tensorboard = _TensorBoard(self.out_dir / TENSORBOARD_DIR, purge)
        if self.progress is not None:
            self.progress(self.rows[-1]["env_steps"] if self.rows else 0, {})

    def compiled(self) -> None:
        """Compilation is done; training time starts."""
        t0 = self.t_prev
        self.t_prev = time.perf_counter() - self.t_start
        self.compile_s = self.t_prev - t0

    def _checkpoint_due(self, done: int) -> bool:
        """Whether a checkpoint is due after ``done`` updates."""
        every = self.cfg.checkpoint_every
        if self.num_updates is None or every == 0 or done >= self.num_updates:
            return True
        return done - self.saved_update >= every

    def record(self, metrics: dict[str, Any], learner: Any, resume: Any = None) -> None:
        """Appends ``k`` updates' metrics; checkpoints the ``learner`` state (and ``resume``,
        the rest of the training state) if all is finite and a checkpoint is due.

        :raises TrainingError: non-finite loss or parameters (nothing is checkpointed).
        :raises RunInterrupted: Ctrl-C or SIGTERM under :func:`stop_on_signals` (checkpoint
            and plot saved first).
        """
        metrics = jax.device_get(metrics)
        t_now = time.perf_counter() - self.t_start
        new_rows = metric_rows(metrics, self.t_prev, t_now)
        self.t_prev = t_now
        stop = _STOP.is_set()
        save = stop or self._checkpoint_due(len(self.rows) + len(new_rows))
        with self._metrics_path.open("a") as f:
            f.writelines(json.dumps(row) + "\n" for row in new_rows)
            if save:  # on disk before the checkpoint that covers them
                f.flush()
                os.fsync(f.fileno())
        self.rows.extend(new_rows)
        if self._tensorboard is not None:
            self._tensorboard.write(new_rows)
        if not (finite(metrics["loss"]) and finite(learner)):
            first_bad = next(
                (i for i, r in enumerate(new_rows) if r.get("loss") is None), len(new_rows) - 1
            )
            update = len(self.rows) - len(new_rows) + first_bad + 1
            raise TrainingError(
                f"non-finite loss at update {update}; stopped. The last good checkpoint in "
                f"{self.out_dir} is kept."
            )
        if save:
            meta = {"update": len(self.rows), "env_steps": new_rows[-1]["env_steps"]}
            save_checkpoint(self.out_dir, learner, meta, resume)
            self.saved_update = len(self.rows)
        if self.progress is not None:
            self.progress(new_rows[-1]["env_steps"], new_rows[-1])
        if stop:
            self.plot()
            self.close()
            raise _interrupted(len(self.rows), self.out_dir, resume is not None)

    def _per_seed(self) -> np.ndarray:
        rows = self.rows
        return np.asarray(
            [r.get("episode_return_per_seed", [r["episode_return"]]) for r in rows], dtype=float
        ).T

    def plot(self) -> None:
        """Writes ``returns.png`` from the rows so far."""
        cfg = self.cfg
        plot_returns(
            self.out_dir / "returns.png",
            [r["env_steps"] for r in self.rows],
            self._per_seed(),
            f"{cfg.algo.upper()} ({cfg.sharing}) on {cfg.env}",
        )

    def close(self) -> None:
        """Closes the loggers (also on errors)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def finish(self) -> dict[str, Any]:
        """Writes ``returns.png``, closes the loggers and returns the run summary (final
        return: mean over the last 10% of updates)."""
        rows = self.rows
        self.plot()
        self.close()
        per_seed = self._per_seed()
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
