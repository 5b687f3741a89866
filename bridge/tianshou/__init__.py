"""Tianshou side of the bridge: the multi-agent manager and its policy, replay buffers, jmarl
algorithms as Tianshou policies, a centralized-critic PPO (``CTDEPolicy``), and Dict-observation
preprocessing for torch networks, and ``MATrainer`` (sequential, self-play and league training
over the manager).

Imports Tianshou and torch (``bridge`` loads this package on first use of one of its names).
"""

from __future__ import annotations

from bridge.tianshou.ctde import CTDEPolicy
from bridge.tianshou.dict_obs import DictObservationWrapper, DictToTensorPreprocessor
from bridge.tianshou.jax_policy import JaxOnPolicyAlgorithm, JaxPolicy, JaxPPO
from bridge.tianshou.ma_trainer import MATrainer
from bridge.tianshou.manager import (
    FlexibleMultiAgentOffPolicyManager,
    FlexibleMultiAgentOnPolicyManager,
    FlexibleMultiAgentPolicyManager,
)

__all__ = [
    "CTDEPolicy",
    "DictObservationWrapper",
    "DictToTensorPreprocessor",
    "FlexibleMultiAgentOffPolicyManager",
    "FlexibleMultiAgentOnPolicyManager",
    "FlexibleMultiAgentPolicyManager",
    "JaxOnPolicyAlgorithm",
    "JaxPPO",
    "JaxPolicy",
    "MATrainer",
]
