"""Hyperparameters of MADDPG."""

from __future__ import annotations

from dataclasses import dataclass

from jmarl.agents.inputs import check_network_fields
from jmarl.algos.replay import check_capacity
from jmarl.config_check import check_fields, check_range


@dataclass(frozen=True)
class MADDPGConfig:
    """Settings of one MADDPG run (Lowe et al. 2017); closed over once by ``make``.

    :param num_envs: environments stepped in lock-step by ``vmap``.
    :param rollout_length: env steps per env between updates.
    :param buffer_size: transitions the replay buffer holds (per seed, fixed memory).
    :param batch_size: transitions per gradient step (on simple_spread N=3, 1024 learned
        faster per env step than 256 at a higher cost per step).
    :param num_epochs: gradient steps (one critic and one actor step each) per update.
    :param learning_starts: env steps collected before the first gradient step.
    :param actor_lr: Adam learning rate of the actors.
    :param critic_lr: Adam learning rate of the centralised critics.
    :param gamma: discount. Episode truncation is treated as termination.
    :param tau: Polyak weight of the target networks' update after every gradient step.
    :param noise_start: exploration for continuous actions: Gaussian noise with this standard
        deviation, in units of half the action range, at the start.
    :param noise_finish: the noise after the decay.
    :param noise_decay: fraction of the updates over which the noise decays linearly.
    :param gumbel_temperature: temperature of the Gumbel-softmax that makes discrete actions
        differentiable (straight-through: one-hot forward, softmax gradient); discrete
        actions explore by sampling the actor's softmax.
    :param action_reg: weight of the penalty on the actors' squared pre-activations (keeps
        tanh / logits out of saturation).
    :param max_grad_norm: global gradient-norm clip of each optimizer.
    :param hidden_sizes: hidden widths of actors and critics.
    :param activation: ``tanh`` | ``relu`` | ``gelu`` | ``silu``.
    :param agent_id_input: append a one-hot agent id to actor and critic inputs.
    :param encoder_features: for structured observations (see :mod:`jmarl.nn.encoders`).
    :param embed_dim: embedding width of each Discrete part / MultiDiscrete dimension.
    :param cnn_channels: channels of the image CNN's 3x3 conv layers.
    """

    num_envs: int = 16
    rollout_length: int = 25
    buffer_size: int = 100_000
    batch_size: int = 1024
    num_epochs: int = 4
    learning_starts: int = 5_000
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    gamma: float = 0.9
    tau: float = 0.01
    noise_start: float = 0.3
    noise_finish: float = 0.05
    noise_decay: float = 0.5
    gumbel_temperature: float = 1.0
    action_reg: float = 1e-3
    max_grad_norm: float = 10.0
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    agent_id_input: bool = False
    encoder_features: int = 64
    embed_dim: int = 16
    cnn_channels: tuple[int, ...] = (16, 32)

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("num_envs", "rollout_length", "buffer_size", "batch_size", "num_epochs"):
            check_range(self, name, 1)
        check_network_fields(self)
        check_range(self, "learning_starts", 0)
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "gumbel_temperature"):
            check_range(self, name, 0.0, strict_low=True)
        check_range(self, "tau", 0.0, 1.0, strict_low=True)
        for name in ("gamma", "noise_decay"):
            check_range(self, name, 0.0, 1.0)
        for name in ("noise_start", "noise_finish", "action_reg"):
            check_range(self, name, 0.0)
        check_capacity(self.num_envs * self.rollout_length, self.buffer_size)

    @property
    def steps_per_update(self) -> int:
        """Env steps consumed by one update (``num_envs * rollout_length``)."""
        return self.num_envs * self.rollout_length
