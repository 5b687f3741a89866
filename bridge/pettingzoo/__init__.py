"""PettingZoo side of the bridge: env wrappers, their padding layout, jmarl <-> gymnasium
conversion, jmarl envs as PettingZoo envs, and host-stepped training of jmarl algorithms.

Imports PettingZoo and gymnasium, never Tianshou or torch.
"""

from __future__ import annotations

from bridge.pettingzoo.aec import EnhancedAECEnv
from bridge.pettingzoo.convert import (
    from_gymnasium_space,
    to_gymnasium_space,
    tree_to_jax,
    tree_to_numpy,
)
from bridge.pettingzoo.cycle import CycleParallelEnv
from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.pettingzoo.layout import PaddedLayout
from bridge.pettingzoo.parallel import EnhancedParallelEnv
from bridge.pettingzoo.to_pettingzoo import JaxParallelEnv, to_pettingzoo

__all__ = [
    "CycleParallelEnv",
    "EnhancedAECEnv",
    "EnhancedParallelEnv",
    "EnhancedPettingZooEnv",
    "JaxParallelEnv",
    "PaddedLayout",
    "from_gymnasium_space",
    "to_gymnasium_space",
    "to_pettingzoo",
    "tree_to_jax",
    "tree_to_numpy",
]
