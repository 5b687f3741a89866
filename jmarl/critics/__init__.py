"""Centralised critics and value-decomposition mixers, as ``Network(init, apply)`` pairs."""

from jmarl.critics.central_q import joint_action_features, make_central_q
from jmarl.critics.mixers import MIXERS, make_qmix_mixer, make_vdn_mixer

__all__ = [
    "MIXERS",
    "joint_action_features",
    "make_central_q",
    "make_qmix_mixer",
    "make_vdn_mixer",
]
