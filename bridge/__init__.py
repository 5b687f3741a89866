"""bridge: jmarl <-> PettingZoo / Tianshou / gymnasium / torch.

The only package of this distribution that imports those libraries. Laid out by what it
serves: :mod:`bridge.pettingzoo` (env wrappers, their padding layout, conversion, jmarl envs as
PettingZoo envs, host-stepped training) and :mod:`bridge.tianshou` (the manager, policies,
buffers, Dict preprocessing, ``MATrainer``). Tianshou-facing names
(``FlexibleMultiAgentPolicyManager``, ``MATrainer``, ...) are imported on first use, so that
``import bridge`` does not pay for importing Tianshou.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.pettingzoo import (
    CycleParallelEnv,
    EnhancedAECEnv,
    EnhancedParallelEnv,
    EnhancedPettingZooEnv,
    JaxParallelEnv,
    from_gymnasium_space,
    to_gymnasium_space,
    to_pettingzoo,
    tree_to_jax,
    tree_to_numpy,
)

_LAZY = {
    "CTDEPolicy": "bridge.tianshou",
    "DictObservationWrapper": "bridge.tianshou",
    "DictToTensorPreprocessor": "bridge.tianshou",
    "JaxOnPolicyAlgorithm": "bridge.tianshou",
    "JaxPPO": "bridge.tianshou",
    "JaxPolicy": "bridge.tianshou",
    "FlexibleMultiAgentPolicyManager": "bridge.tianshou",
    "FlexibleMultiAgentOnPolicyManager": "bridge.tianshou",
    "FlexibleMultiAgentOffPolicyManager": "bridge.tianshou",
    "MATrainer": "bridge.tianshou",
}

__all__ = [
    "CTDEPolicy",
    "CycleParallelEnv",
    "DictObservationWrapper",
    "DictToTensorPreprocessor",
    "EnhancedAECEnv",
    "EnhancedParallelEnv",
    "EnhancedPettingZooEnv",
    "FlexibleMultiAgentOffPolicyManager",
    "FlexibleMultiAgentOnPolicyManager",
    "FlexibleMultiAgentPolicyManager",
    "JaxOnPolicyAlgorithm",
    "JaxPPO",
    "JaxParallelEnv",
    "JaxPolicy",
    "MATrainer",
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
