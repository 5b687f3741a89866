"""bridge: jmarl <-> PettingZoo / Tianshou / gymnasium / torch.

The only package of this distribution that imports those libraries.
"""

from bridge.convert import from_gymnasium_space, to_gymnasium_space, tree_to_jax, tree_to_numpy
from bridge.pettingzoo_env import EnhancedPettingZooEnv
from bridge.to_pettingzoo import JaxParallelEnv, to_pettingzoo

__all__ = [
    "EnhancedPettingZooEnv",
    "JaxParallelEnv",
    "from_gymnasium_space",
    "to_gymnasium_space",
    "to_pettingzoo",
    "tree_to_jax",
    "tree_to_numpy",
]
