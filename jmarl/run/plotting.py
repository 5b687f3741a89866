"""The learning-curve figure ``returns.png``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_returns(path: Path, env_steps: Sequence[float], returns: np.ndarray, title: str) -> None:
    """Saves episode return vs env steps; ``returns`` is ``[U]`` or ``[seeds, U]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = np.atleast_2d(np.asarray(returns, dtype=float))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if r.shape[0] > 1:
        for i, row in enumerate(r):
            ax.plot(env_steps, row, alpha=0.35, lw=1, label=f"seed {i}")
    with warnings.catch_warnings():  # updates without a finished episode are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(r, axis=0)
    ax.plot(env_steps, mean, lw=2, color="C0", label="mean")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (per agent)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
