"""bridge: jmarl <-> PettingZoo / Tianshou / gymnasium / torch.

The only package of this distribution that imports those libraries. Tianshou-facing names
(``FlexibleMultiAgentPolicyManager``, ...) are imported on first use, so that ``import bridge``
does not pay for importing Tianshou.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.convert import from_gymnasium_space, to_gymnasium_space, tree_to_jax, tree_to_numpy
from bridge.pettingzoo_env import CycleParallelEnv, EnhancedPettingZooEnv
from bridge.to_pettingzoo import JaxParallelEnv, to_pettingzoo

_LAZY = {
    "DictObservationWrapper": "bridge.dict_obs",
    "DictToTensorPreprocessor": "bridge.dict_obs",
    "JaxOnPolicyAlgorithm": "bridge.jax_policy",
    "JaxPPO": "bridge.jax_policy",
    "JaxPolicy": "bridge.jax_policy",
    "FlexibleMultiAgentPolicyManager": "bridge.tianshou_manager",
    "FlexibleMultiAgentOnPolicyManager": "bridge.tianshou_manager",
    "FlexibleMultiAgentOffPolicyManager": "bridge.tianshou_manager",
}

__all__ = [
    "CycleParallelEnv",
    "DictObservationWrapper",
    "DictToTensorPreprocessor",
    "EnhancedPettingZooEnv",
    "FlexibleMultiAgentOffPolicyManager",
    "FlexibleMultiAgentOnPolicyManager",
    "FlexibleMultiAgentPolicyManager",
    "JaxOnPolicyAlgorithm",
    "JaxPPO",
    "JaxParallelEnv",
    "JaxPolicy",
    "from_gymnasium_space",
    "to_gymnasium_space",
    "to_pettingzoo",
    "tree_to_jax",
    "tree_to_numpy",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")
