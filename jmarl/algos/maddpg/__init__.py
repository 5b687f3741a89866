"""MADDPG: deterministic actors with centralised critics ``Q_i(s, o_i, a_1..a_N)``."""

from jmarl.algos.maddpg.config import MADDPGConfig
from jmarl.algos.maddpg.train import make

__all__ = ["MADDPGConfig", "make"]
