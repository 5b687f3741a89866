"""Centralised critics and value-decomposition mixers, as ``Network(init, apply)`` pairs."""

from jmarl.critics.mixers import MIXERS, make_qmix_mixer, make_vdn_mixer

__all__ = ["MIXERS", "make_qmix_mixer", "make_vdn_mixer"]
