"""Multi-agent PPO: IPPO (decentralised critics) and MAPPO (centralised critic)."""

from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams, make_actor_critic
from jmarl.algos.ppo.train import make, make_act, make_ppo
from jmarl.algos.ppo.update import TrainState

__all__ = [
    "ActorCritic",
    "ActorCriticParams",
    "PPOConfig",
    "TrainState",
    "make",
    "make_act",
    "make_actor_critic",
    "make_ppo",
]
