"""Training algorithms on one contract (:mod:`jmarl.algos.base`), and their registry.

``ALGORITHMS`` maps each name to its :class:`~jmarl.algos.base.Algorithm`; a new algorithm is
a folder under ``jmarl/algos/`` plus one :func:`register` call::

    register(Algorithm("my_algo", MyConfig, make_my_algo, section="my_algo"))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from jmarl.algos.base import Algorithm, Trainer, TrainerState, TrainOutput, Transition
from jmarl.algos.maddpg import MADDPGConfig
from jmarl.algos.maddpg import make as _make_maddpg_trainer
from jmarl.algos.ppo import PPOConfig, make_ppo
from jmarl.algos.ppo.train import make as _make_ppo_trainer
from jmarl.algos.qlearning import QConfig
from jmarl.algos.qlearning import make as _make_q_trainer


class Registry(Mapping[str, Algorithm]):
    """Name -> :class:`Algorithm`, in registration order (``list(ALGORITHMS)`` gives names)."""

    def __init__(self) -> None:
        self._algorithms: dict[str, Algorithm] = {}

    def __getitem__(self, name: str) -> Algorithm:
        if name not in self._algorithms:
            raise ValueError(f"unknown algorithm {name!r}; choose from {list(self._algorithms)}")
        return self._algorithms[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._algorithms)

    def __len__(self) -> int:
        return len(self._algorithms)

    def __contains__(self, name: object) -> bool:
        return name in self._algorithms

    def __repr__(self) -> str:
        return f"Registry({list(self._algorithms)})"


ALGORITHMS = Registry()


def register(algorithm: Algorithm) -> None:
    """Adds ``algorithm`` to :data:`ALGORITHMS` (a name taken twice is an error)."""
    if algorithm.name in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered")
    if not dataclasses.is_dataclass(algorithm.config):
        raise TypeError(f"algorithm {algorithm.name!r}: config must be a dataclass class")
    ALGORITHMS._algorithms[algorithm.name] = algorithm


def unregister(name: str) -> None:
    """Removes ``name`` from :data:`ALGORITHMS` (for tests that register toy algorithms)."""
    ALGORITHMS._algorithms.pop(name, None)


def _ppo(name: str, centralized: bool, summary: str) -> Algorithm:
    """IPPO / MAPPO: one PPO implementation, the critic kind fixed by the algorithm. The run
    defaults suit `jmarl train`'s simple_spread: a short discount for 25-step episodes with dense
    distance rewards."""
    return Algorithm(
        name,
        PPOConfig,
        _make_ppo_trainer,
        section="ppo",
        fixed=(("centralized_critic", centralized),),
        summary=summary,
        run_defaults=PPOConfig(gamma=0.9),
    )


register(_ppo("ippo", False, "PPO with one decentralised critic per agent (its own observation)"))
register(_ppo("mappo", True, "PPO with a centralised critic (global state + own observation)"))


def _q(name: str, mixer: str, summary: str) -> Algorithm:
    """IQL / VDN / QMIX: one Q-learning implementation, the mixer fixed by the algorithm."""
    return Algorithm(
        name, QConfig, _make_q_trainer, section="q", fixed=(("mixer", mixer),), summary=summary
    )


register(_q("iql", "none", "independent Q-learners, each on its own reward (replay, double Q)"))
register(_q("vdn", "vdn", "value decomposition: team Q is the sum of agent utilities"))
register(_q("qmix", "qmix", "value decomposition by a monotonic mixer on the global state"))
register(
    Algorithm(
        "maddpg",
        MADDPGConfig,
        _make_maddpg_trainer,
        section="maddpg",
        summary="deterministic actors with centralised critics Q_i(s, a_1..a_N) (replay)",
    )
)


def ppo_config_for(algo: str, cfg: PPOConfig) -> PPOConfig:
    """``cfg`` with the critic kind that ``algo`` (``ippo`` | ``mappo``) names."""
    algorithm = ALGORITHMS[algo]
    if algorithm.config is not PPOConfig:
        raise ValueError(f"ppo_config_for takes a PPO algorithm (ippo, mappo), got {algo!r}")
    return algorithm.configure(cfg)


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "MADDPGConfig",
    "PPOConfig",
    "QConfig",
    "Registry",
    "TrainOutput",
    "Trainer",
    "TrainerState",
    "Transition",
    "make_ppo",
    "ppo_config_for",
    "register",
    "unregister",
]
