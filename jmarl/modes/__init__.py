"""Training modes over any algorithm of the contract (all inside the jitted program).

* ``simultaneous``: every policy learns every update (the algorithm as it is);
* ``sequential`` (:func:`sequential`): one policy learns while the others are frozen,
  round-robin;
* ``self_play`` and ``league`` (:func:`league`): a learner (a population) against snapshots
  of itself in a fixed-size pool, PFSP matchmaking, AlphaStar roles and Elo ratings.
"""

from __future__ import annotations

from jmarl.algos.base import Trainer
from jmarl.config_check import ConfigError
from jmarl.env.base import Env
from jmarl.modes.league import (
    ROLES,
    SAMPLING,
    LeagueConfig,
    LeagueState,
    check_league,
    league,
    league_config,
    member_names,
)
from jmarl.modes.ratings import elo_expected, elo_update, pfsp_weights, win_rates
from jmarl.modes.sequential import check_sequential, sequential

MODES = ("simultaneous", "sequential", "self_play", "league")
POPULATION_MODES = ("self_play", "league")


def apply_mode(
    trainer: Trainer,
    mode: str,
    turn_length: int = 10,
    env: Env | None = None,
    population: LeagueConfig | None = None,
) -> Trainer:
    """``trainer`` trained in ``mode`` (one of :data:`MODES`).

    :param turn_length: updates per turn (``sequential``).
    :param env: the env ``trainer`` trains on (``self_play`` / ``league``).
    :param population: pool and roles (``self_play`` / ``league``; default
        :class:`LeagueConfig` for self-play, :func:`league_config` for a league).
    """
    if mode == "simultaneous":
        return trainer
    if mode == "sequential":
        return sequential(trainer, turn_length)
    if mode in POPULATION_MODES:
        if env is None:
            raise ValueError(f"mode {mode!r} needs the env")
        if population is None:
            population = LeagueConfig() if mode == "self_play" else league_config()
        return league(trainer, env, population, mode)
    raise ConfigError(f"unknown mode {mode!r}; choose from {list(MODES)}")


__all__ = [
    "MODES",
    "POPULATION_MODES",
    "ROLES",
    "SAMPLING",
    "LeagueConfig",
    "LeagueState",
    "apply_mode",
    "check_league",
    "check_sequential",
    "elo_expected",
    "elo_update",
    "league",
    "league_config",
    "member_names",
    "pfsp_weights",
    "sequential",
    "win_rates",
]
