"""Multi-agent Q-learning: independent learners (IQL) and value decomposition (VDN, QMIX)."""

from jmarl.algos.qlearning.config import QConfig
from jmarl.algos.qlearning.train import make

__all__ = ["QConfig", "make"]
