"""Hyperparameters of multi-agent PPO (IPPO / MAPPO)."""

from __future__ import annotations

from dataclasses import dataclass

from jmarl.agents.inputs import check_network_fields
from jmarl.config_check import INT32_MAX, ConfigError, check_fields, check_range
from jmarl.nn.cross_agent import MIXERS


@dataclass(frozen=True)
class PPOConfig:
    """Settings of one multi-agent PPO run; closed over once by ``make_train``.

    :param num_envs: environments stepped in lock-step by ``vmap``; more envs give larger,
        less correlated batches per update at the cost of fewer updates for a step budget.
    :param rollout_length: env steps per env between updates (T).
    :param num_epochs: passes over each rollout.
    :param num_minibatches: minibatches per epoch; the batch is split over (time x envs),
        each sample keeping all agents of its step together.
    :param lr: Adam learning rate; with ``anneal_lr`` it decays linearly to 0.
    :param gamma: discount. Episode truncation is treated as termination (as MAPPO does on MPE).
    :param gae_lambda: GAE lambda (bias/variance trade-off of the advantage).
    :param clip_eps: PPO ratio clip, also used for value clipping when ``clip_value``.
    :param ent_coef: entropy bonus weight.
    :param vf_coef: value loss weight.
    :param max_grad_norm: global gradient-norm clip.
    :param hidden_sizes: hidden layer widths of actor and critic.
    :param activation: ``tanh`` | ``relu`` | ``gelu`` | ``silu``.
    :param centralized_critic: MAPPO (critic sees the global state and the agent's own
        observation) if True, IPPO (critic sees only the agent's observation) if False.
        Actors always see only their own observation.
    :param agent_id_input: append a one-hot agent id to actor and critic inputs (breaks
        the permutation symmetry of shared policies; useful when agents need roles).
    :param encoder_features: for structured observations (Dict / Tuple / image / discrete,
        see :mod:`jmarl.nn.encoders`): output width of each Box part's Dense layer and of each
        image CNN. Flat Box observations skip the encoder and ignore the three encoder fields.
    :param embed_dim: embedding width of each Discrete part / MultiDiscrete dimension.
    :param cnn_channels: channels of the image CNN's 3x3 conv layers; more or wider layers
        see more but cost compute on every step of every agent.
    :param recurrent: actor and critic get a GRU after their first layer (memory across the
        steps of an episode, reset at its start); updates replay whole rollouts as sequences,
        and minibatches split the envs (``num_envs`` must be divisible by ``num_minibatches``).
    :param gru_size: the GRU's width when ``recurrent``.
    :param critic_mixing: ``none``, or a cross-agent layer in the critic
        (:mod:`jmarl.nn.cross_agent`): ``mean`` or ``attention`` over the first-layer features
        of every agent of the env. The critic then sees all agents without a fixed-size
        global state and stays permutation-equivariant for a shared policy; actors still see
        only their own observation. Feed-forward only.
    """

    num_envs: int = 64
    rollout_length: int = 50
    num_epochs: int = 4
    num_minibatches: int = 2
    lr: float = 2.5e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    clip_value: bool = True
    normalize_advantages: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    centralized_critic: bool = True
    agent_id_input: bool = False
    encoder_features: int = 64
    embed_dim: int = 16
    cnn_channels: tuple[int, ...] = (16, 32)
    recurrent: bool = False
    gru_size: int = 64
    critic_mixing: str = "none"

    def __post_init__(self) -> None:
        check_fields(self)  # types from the annotations: "64" is not a tuple of widths
        for name in ("num_envs", "rollout_length", "num_epochs", "num_minibatches", "gru_size"):
            check_range(self, name, 1)
        check_network_fields(self)
        check_range(self, "lr", 0.0, strict_low=True)
        check_range(self, "max_grad_norm", 0.0, strict_low=True)
        for name in ("clip_eps", "ent_coef", "vf_coef"):
            check_range(self, name, 0.0)
        for name in ("gamma", "gae_lambda"):
            check_range(self, name, 0.0, 1.0)
        if self.num_envs * self.rollout_length > INT32_MAX:
            raise ConfigError(
                f"num_envs*rollout_length ({self.num_envs * self.rollout_length}) must fit in "
                f"int32 (at most {INT32_MAX})"
            )
        if (self.num_envs * self.rollout_length) % self.num_minibatches:
            raise ConfigError(
                f"num_envs*rollout_length ({self.num_envs * self.rollout_length}) must be "
                f"divisible by num_minibatches ({self.num_minibatches})"
            )
        if self.recurrent and self.num_envs % self.num_minibatches:
            raise ConfigError(
                f"recurrent PPO splits minibatches over envs: num_envs ({self.num_envs}) must "
                f"be divisible by num_minibatches ({self.num_minibatches})"
            )
        if self.critic_mixing not in ("none", *MIXERS):
            raise ConfigError(
                f"unknown critic_mixing {self.critic_mixing!r}; expected none, {', '.join(MIXERS)}"
            )
        if self.critic_mixing != "none" and self.recurrent:
            raise ConfigError("critic_mixing is feed-forward only: not with recurrent=True")

    def unused(self) -> dict[str, str]:
        """Fields these settings ignore, with why (``jmarl train`` refuses changed ones)."""
        return {} if self.recurrent else {"gru_size": "it is only used with --recurrent"}

    @property
    def steps_per_update(self) -> int:
        """Env steps consumed by one update (``num_envs * rollout_length``)."""
        return self.num_envs * self.rollout_length
