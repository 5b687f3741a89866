"""Training algorithms. ``ippo`` and ``mappo`` are PPO with a local or a centralised critic."""

import dataclasses

from jmarl.algos.ppo import PPOConfig, make_ppo

ALGORITHMS: tuple[str, ...] = ("ippo", "mappo")


def ppo_config_for(algo: str, cfg: PPOConfig) -> PPOConfig:
    """``cfg`` with the critic kind that ``algo`` (``ippo`` | ``mappo``) names."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {ALGORITHMS}")
    return dataclasses.replace(cfg, centralized_critic=(algo == "mappo"))


__all__ = ["ALGORITHMS", "PPOConfig", "make_ppo", "ppo_config_for"]
