"""jmarl: functional multi-agent reinforcement learning in JAX.

``import jmarl`` loads only JAX-side code (no torch, tianshou, pettingzoo, gymnasium).
"""

from jmarl.agents.sharing import SHARING_MODES, PolicyMapping, make_policy_mapping, share
from jmarl.algos import ALGORITHMS, ppo_config_for
from jmarl.algos import register as register_algorithm
from jmarl.algos.base import Algorithm, Trainer, TrainerState, TrainOutput
from jmarl.algos.ppo import PPOConfig, make_ppo
from jmarl.env import Env, EnvSpec, TimeStep, from_jaxmarl, list_envs, make, register, spaces
from jmarl.eval.nash_conv import make_nash_conv, nash_conv

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "SHARING_MODES",
    "Algorithm",
    "Env",
    "EnvSpec",
    "PPOConfig",
    "PolicyMapping",
    "TimeStep",
    "TrainOutput",
    "Trainer",
    "TrainerState",
    "from_jaxmarl",
    "list_envs",
    "make",
    "make_nash_conv",
    "make_policy_mapping",
    "make_ppo",
    "nash_conv",
    "ppo_config_for",
    "register",
    "register_algorithm",
    "share",
    "spaces",
]
