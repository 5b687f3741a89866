"""Agents: agent -> policy mapping and parameter sharing."""

from jmarl.agents.sharing import (
    SHARING_MODES,
    Block,
    Network,
    PolicyMapping,
    agent_one_hot,
    make_policy_mapping,
    share,
)

__all__ = [
    "SHARING_MODES",
    "Block",
    "Network",
    "PolicyMapping",
    "agent_one_hot",
    "make_policy_mapping",
    "share",
]
