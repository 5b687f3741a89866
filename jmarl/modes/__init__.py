"""Training modes over any algorithm of the contract (all inside the jitted program).

``simultaneous`` (every policy learns every update; the algorithm as it is) and
``sequential`` (:func:`sequential`). Self-play and league modes are to come.
"""

from __future__ import annotations

from jmarl.algos.base import Trainer
from jmarl.config_check import ConfigError
from jmarl.modes.sequential import check_sequential, sequential

MODES = ("simultaneous", "sequential")


def apply_mode(trainer: Trainer, mode: str, turn_length: int) -> Trainer:
    """``trainer`` trained in ``mode`` (one of :data:`MODES`)."""
    if mode == "simultaneous":
        return trainer
    if mode == "sequential":
        return sequential(trainer, turn_length)
    raise ConfigError(f"unknown mode {mode!r}; choose from {list(MODES)}")


__all__ = ["MODES", "apply_mode", "check_sequential", "sequential"]
